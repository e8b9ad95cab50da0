import WaveRedis

/// An error the CLI reports as one line on stderr with its exit code.
struct CLIError: Error {
    /// 2: bad input. 3: a server could not be reached. 1: anything else.
    var exitCode: Int32
    var message: String

    static func badInput(_ message: String) -> CLIError { CLIError(exitCode: 2, message: message) }

    static func from(_ error: any Error) -> CLIError {
        if let error = error as? CLIError { return error }
        if let error = error as? RedisClientError {
            switch error.code {
            case .connectionFailed, .connectionClosed, .timeout, .circuitOpen, .tls:
                return CLIError(
                    exitCode: 3,
                    message: "\(error.message) (hint: is redis-server running there? start one with 'redis-server --port 6379' or pass --redis URL)"
                )
            case .authentication:
                return CLIError(exitCode: 3, message: "\(error.message) (hint: check the user and password in the --redis URL)")
            case .invalidConfiguration:
                return CLIError(exitCode: 2, message: error.message)
            default:
                return CLIError(exitCode: 1, message: error.description)
            }
        }
        return CLIError(exitCode: 1, message: "\(error)")
    }
}
