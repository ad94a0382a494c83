import ArgumentParser
import Foundation
import TradfriBridge

struct WebPasswordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web-password",
        abstract: "Set the password of the web page's administrator.",
        discussion: """
            Asks for the new password twice (it is not shown) and stores only a slow, salted hash \
            of it (scrypt) in web.password_file (default /var/lib/tradfri-bridge/web-password, \
            mode 0600). The running bridge uses it at the next log-in: no restart is needed, and \
            every session made with the old password ends. Run it as the bridge's user:
              sudo -u tradfri-bridge tradfri-bridge web-password
            """)

    @OptionGroup var common: CommonOptions

    @Option(help: "The administrator's user name (1–32 of A–Z, a–z, 0–9, '.', '_', '-').")
    var user = "admin"

    @Flag(help: "Read the password from standard input (one line) instead of asking twice.")
    var stdin = false

    func run() throws {
        let configuration = try common.load()
        let path = configuration.web.passwordFile
        let password: String
        if stdin {
            guard let line = readLine(strippingNewline: true) else { throw Failure("no password on standard input") }
            password = line
        } else {
            let first = try Self.askSecret("New password for the web page's administrator (\(user)): ")
            let second = try Self.askSecret("The same password again: ")
            guard first == second else { throw Failure("the two passwords differ; nothing was changed") }
            password = first
        }
        do {
            try WebPassword.make(user: user, password: password).store(path: path)
        } catch {
            throw Failure("\(error)")
        }
        print("The web page's administrator is \(user); the password hash is in \(path).")
        if !configuration.web.enabled {
            print("The web page is off: set web.enabled: true and restart the bridge.")
        }
    }

    /// Reads a line from the terminal without echoing it.
    static func askSecret(_ prompt: String) throws -> String {
        guard isatty(STDIN_FILENO) == 1 else {
            throw Failure("standard input is not a terminal: use --stdin to pass the password on it")
        }
        FileHandle.standardError.write(Data(prompt.utf8))
        var saved = termios()
        tcgetattr(STDIN_FILENO, &saved)
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        defer {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = readLine(strippingNewline: true) else { throw Failure("no password given") }
        return line
    }
}
