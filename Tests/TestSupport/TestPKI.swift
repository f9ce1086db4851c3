import Foundation

/// The test PKI and SoftHSM token store of `scripts/make-test-pki.sh`, created once per test
/// process in a fresh temporary directory (so runs never share state) and exported to SoftHSM
/// through SOFTHSM2_CONF before any module is loaded.
public final class TestPKI: Sendable {
    public let directory: String
    public let softHSMModule = "/usr/lib/softhsm/libsofthsm2.so"
    public let pin = "123456"
    /// The port of the CA's web server (CRLs, CA issuers) and of its OCSP responder on 127.0.0.1
    /// that the test certificates name, chosen free when the PKI is made: test runs beside each
    /// other each have their own.
    public let crlPort: UInt16
    public let ocspPort: UInt16

    /// Made on first use; if that fails, every test that uses it fails with the script's output
    /// (the test process goes on).
    public static var shared: TestPKI {
        get throws { try sharedResult.get() }
    }

    private static let sharedResult = Result { try TestPKI() }

    private init() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "smime-milter-test-\(getpid())-\(UUID().uuidString.prefix(8))")
        directory = base.path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        crlPort = try Self.freePort(avoiding: [])
        ocspPort = try Self.freePort(avoiding: [crlPort])
        let result = try TestPKI.run(
            ["bash", TestPKI.repositoryRoot + "/scripts/make-test-pki.sh", directory],
            environment: [
                "CRL_BASE_URL": "http://127.0.0.1:\(crlPort)/crl", "CA_BASE_URL": "http://127.0.0.1:\(crlPort)/ca",
                "OCSP_URL": "http://127.0.0.1:\(ocspPort)/",
            ])
        guard result.status == 0 else {
            throw NSError(domain: "TestPKI", code: Int(result.status), userInfo: [NSLocalizedDescriptionKey: result.output])
        }
        setenv("SOFTHSM2_CONF", directory + "/softhsm2.conf", 1)
    }

    /// A port no one listens on at 127.0.0.1, below the kernel's range for outgoing connections
    /// (32768 and up), where no client connection takes it meanwhile.
    static func freePort(avoiding taken: [UInt16]) throws -> UInt16 {
        for _ in 0..<200 {
            let port = UInt16.random(in: 20000..<32000)
            if taken.contains(port) { continue }
            let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(socketDescriptor) }
            if bindLoopback(socketDescriptor, port: port) == 0 { return port }
        }
        throw NSError(domain: "TestPKI", code: 4, userInfo: [NSLocalizedDescriptionKey: "no free port on 127.0.0.1 in 20000-31999"])
    }

    /// The repository's top folder, found from this source file's location.
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url.path
            }
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    public func path(_ relative: String) -> String { directory + "/" + relative }

    /// The PIN file of a token, mode 0600.
    public func pinFile(token: String) -> String { path("pins/\(token)") }

    /// A key URI on one of the test tokens, with its PIN file.
    public func keyURI(token: String, object: String) -> String {
        "pkcs11:token=\(token);object=\(object);type=private?pin-source=file:\(pinFile(token: token))"
    }

    /// SIGPIPE ignored in the test process: writing to a tool that has exited is an error to
    /// handle there, not the end of every test.
    private static let ignoringBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// Runs a command, returning its exit status and combined output.
    @discardableResult
    public static func run(_ arguments: [String], input: [UInt8]? = nil, environment: [String: String] = [:]) throws
        -> (status: Int32, output: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let stdin = Pipe()
        process.standardInput = stdin
        _ = ignoringBrokenPipes
        try process.run()
        // A tool that exits before reading its input (refusing its arguments) must fail its test,
        // not stop the test process: the write's EPIPE is ignored and its exit status tells.
        if let input { try? stdin.fileHandleForWriting.write(contentsOf: Data(input)) }
        try? stdin.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The `smime-milter` executable built beside the test bundle, and no other: the sanitized
    /// test bundle must run the sanitized daemon, never fall back on another build.
    public static var executable: String {
        get throws {
            let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            let candidate = products.appendingPathComponent("smime-milter").path
            guard FileManager.default.isExecutableFile(atPath: candidate) else {
                throw NSError(
                    domain: "TestPKI", code: 3,
                    userInfo: [
                        NSLocalizedDescriptionKey:
                            "no smime-milter beside the test bundle at \(candidate); build it with the tests (swift build --build-tests)"
                    ])
            }
            return candidate
        }
    }

    /// A private instance of the hardware-like token module (`Tests/HardwareToken/hwtoken.c`):
    /// its own copy of the library and of SoftHSM under it, and its own control directory, so
    /// that a test's module restarts, hangs and counters touch no other test. Returns the
    /// module's path; `control(module:token:)` is where that token's behaviour is set.
    public func privateHardwareModule(_ name: String) throws -> String {
        let directory = try temporaryDirectory("hw-\(name)")
        let module = directory + "/hwtoken.so"
        try FileManager.default.copyItem(atPath: path("hwtoken/hwtoken.so"), toPath: module)
        try FileManager.default.copyItem(atPath: path("hwtoken/hwtoken.so.real"), toPath: module + ".real")
        for token in try FileManager.default.contentsOfDirectory(atPath: path("hwtoken/control")) {
            try FileManager.default.createDirectory(
                atPath: directory + "/control/" + token, withIntermediateDirectories: true)
            // The counters start at 0 in files of their own: `counter` refuses a missing one.
            for counter in Self.counters {
                try "0".write(toFile: directory + "/control/" + token + "/" + counter, atomically: true, encoding: .utf8)
            }
        }
        return module
    }

    /// The control directory of `token` under a hardware-like module.
    public static func control(module: String, token: String) -> String {
        URL(fileURLWithPath: module).deletingLastPathComponent().path + "/control/" + token
    }

    /// Sets one of the hardware-like token's behaviours (a file with `value`), or removes it (nil).
    public static func setControl(module: String, token: String, _ name: String, _ value: String?) throws {
        let file = control(module: module, token: token) + "/" + name
        if let value {
            try value.write(toFile: file, atomically: true, encoding: .utf8)
        } else if FileManager.default.fileExists(atPath: file) {
            try FileManager.default.removeItem(atPath: file)
        }
    }

    /// The counters the hardware-like token keeps.
    public static let counters = ["login_calls", "wrong_logins", "signs", "pin_failures"]

    /// A counter the hardware-like token keeps (one of `counters`). A counter file that is
    /// missing or holds no number is an error: read as 0, a wrong control folder would make
    /// every "no login happened" check pass.
    public static func counter(module: String, token: String, _ name: String) throws -> Int {
        let file = control(module: module, token: token) + "/" + name
        let text = try String(contentsOfFile: file, encoding: .utf8)
        guard let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw NSError(
                domain: "TestPKI", code: 2, userInfo: [NSLocalizedDescriptionKey: "the counter \(file) holds '\(text)', no number"])
        }
        return value
    }

    /// A fresh temporary directory for one test.
    public func temporaryDirectory(_ name: String) throws -> String {
        let path = directory + "/tmp-\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
