import Gateway
import Token

/// The PIN guard of a command that logs in to a token: the daemon's, kept under the
/// configuration's StateDirectory (or `--state-directory`), so that a PIN the token refused is
/// not presented again by a command either.
enum CommandPINGuard {
    /// - Parameters:
    ///   - config: a configuration file to take StateDirectory from (nil: the default one's).
    ///   - stateDirectory: overrides it.
    static func make(config: String?, stateDirectory: String?) throws -> PINGuard {
        var configuration = Configuration()
        if let config { configuration = try Configuration.load(path: config) }
        if let stateDirectory { configuration.stateDirectory = stateDirectory }
        return SignerLoader.pinGuard(configuration)
    }
}
