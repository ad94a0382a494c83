#ifndef CCOAP_SHIM_H
#define CCOAP_SHIM_H
// libcoap 4.3.1 (Debian 12), openssl flavour. Only the `CoAP` module imports this.
#include <coap3/coap.h>

// Macros that do not import into Swift, re-exported as constants or inline functions.
static const uint32_t CCOAP_IO_NO_WAIT = COAP_IO_NO_WAIT;
// coap_log_t is an int with syslog values in 4.3.1 (an enum from 4.3.2 on): keep them here.
static const int CCOAP_LOG_EMERG = LOG_EMERG;
static const int CCOAP_LOG_ERR = LOG_ERR;
static const int CCOAP_LOG_WARNING = LOG_WARNING;
static const int CCOAP_LOG_NOTICE = LOG_NOTICE;
static const int CCOAP_LOG_INFO = LOG_INFO;
static const int CCOAP_LOG_DEBUG = LOG_DEBUG;

static inline unsigned int ccoap_response_class(unsigned int code) { return (code >> 5) & 0x7; }
static inline unsigned int ccoap_response_detail(unsigned int code) { return code & 0x1f; }
#endif
