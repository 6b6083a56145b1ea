import ArgumentParser
import DoorbellVerification
import Foundation

/// `doorbell hash-password`: prints the `dashboard.password_hash` for a password read from the
/// terminal (without echo) or from standard input, so the password never appears in argv or history.
struct HashPasswordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash-password",
        abstract: "Print a dashboard.password_hash for a password read from standard input.",
        discussion: "Example: doorbell hash-password  (type the password), or: printf '%s' \"$PASSWORD\" | doorbell hash-password"
    )

    @Option(help: "PBKDF2 iterations (default \(PasswordHash.defaultIterations)).")
    var iterations: Int = PasswordHash.defaultIterations

    func run() throws {
        let password: String
        if isatty(STDIN_FILENO) != 0 {
            guard let typed = getpass("Password: ") else { throw ExitCode(1) }
            password = String(cString: typed)
        } else {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            password = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
        }
        guard password.count >= 8 else {
            FileHandle.standardError.write(Data("doorbell: use a password of at least 8 characters\n".utf8))
            throw ExitCode(1)
        }
        guard (1_000...10_000_000).contains(iterations) else {
            FileHandle.standardError.write(Data("doorbell: --iterations from 1000 to 10000000\n".utf8))
            throw ExitCode(1)
        }
        print(PasswordHash.make(password: password, iterations: iterations))
    }
}
