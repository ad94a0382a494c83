#ifndef CTESTSUPPORT_SHIM_H
#define CTESTSUPPORT_SHIM_H
// What tests need from Linux that Swift cannot call directly (syscall is variadic).
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

// A pidfd for a process (Linux 5.3+): readable once the process has exited.
static inline int ctestsupport_process_pidfd(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

// A pidfd for one thread of this process (Linux 6.9+): readable once the thread has exited.
// -1 with errno EINVAL on older kernels.
static inline int ctestsupport_thread_pidfd(pid_t tid) {
    return (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
}
#endif
