import Foundation
import Gateway
import SMIME
import TestSupport
import Testing
import Token

@Suite struct ConfigurationTests {
    @Test func everyKeyParses() throws {
        let text = """
            # comment
            Socket            inet:8893@127.0.0.1
            umask             002
            UserID            smime-milter
            Mode              s
            AuthservID        mail.dienbien.gov.vn   # trailing comment
            InternalHosts     127.0.0.1, ::1, 10.20.0.0/16
            MTA               ORIGINATING
            SigningTable      /etc/smime-milter/signing-table
            AuthorizedSigners /etc/smime-milter/authorized-signers
            PKCS11Module      /usr/lib/softhsm/libsofthsm2.so
            SessionPoolSize   4
            SigningTimeout    20
            TrustAnchors      /etc/smime-milter/trust
            Intermediates     /etc/smime-milter/chain.pem
            CRLDirectory      /etc/smime-milter/crl
            RevocationCheck   crl+fetch
            CRLGracePeriod    3600
            SigningTimeSkew   7200
            HeaderLanguage    vi
            CRLFetchTimeout   3
            FetchHosts        crl.internal.example, 10.20.0.5:8080
            DigestAlgorithm   sha-384
            OnSignFailure     reject
            OnBadSignature    quarantine
            OnInternalError   accept
            OnUnauthorizedSigner accept
            SignBounces       yes
            MaximumSignSize   25M
            AddReadableHeader no
            SubjectTag        [SMIME?]
            LogLevel          debug
            Syslog            no
            StateDirectory    /var/lib/smime-milter-test
            SpoolThreshold    1M
            SpoolDirectory    /var/tmp
            Units             /etc/smime-milter/units
            LocalDomains      Dienbien.gov.vn, .dienbien.gov.vn
            EventDatabase     none
            EventDatabasePasswordFile /etc/smime-milter/records-password
            ServerName        mx2.dienbien.gov.vn
            EventRetention    30
            ReportMailTo      vanphong.ubnd@dienbien.gov.vn, lanhdao@stttt.dienbien.gov.vn
            ReportMailFrom    baocao@stttt.dienbien.gov.vn
            OnMalformed       accept
            AllowSHA1Signatures yes
            MetricsListen     inet:9894@127.0.0.1
            """
        let configuration = try Configuration.parse(text, file: "test.conf")
        #expect(configuration.socket == .inet(port: 8893, host: "127.0.0.1"))
        #expect(configuration.umask == "002")
        #expect(configuration.mode == "s")
        #expect(configuration.authservID == "mail.dienbien.gov.vn")
        #expect(configuration.internalHosts == ["127.0.0.1", "::1", "10.20.0.0/16"])
        #expect(configuration.mta == ["ORIGINATING"])
        #expect(configuration.sessionPoolSize == 4)
        #expect(configuration.signingTimeout == 20)
        #expect(configuration.revocationCheck == .crlFetch)
        #expect(configuration.crlGracePeriod == 3600 && configuration.signingTimeSkew == 7200)
        #expect(configuration.headerLanguage == .vi)
        #expect(configuration.crlFetchTimeout == 3)
        #expect(configuration.fetchHosts == ["crl.internal.example", "10.20.0.5:8080"])
        #expect(configuration.digestAlgorithm == .sha384)
        #expect(configuration.onSignFailure == .reject)
        #expect(configuration.onBadSignature == .quarantine)
        #expect(configuration.onInternalError == .accept)
        #expect(configuration.signBounces)
        #expect(configuration.maximumSignSize == 25 << 20)
        #expect(!configuration.addReadableHeader)
        #expect(configuration.subjectTag == "[SMIME?]")
        #expect(configuration.logLevel == "debug")
        #expect(!configuration.syslog)
        #expect(configuration.onUnauthorizedSigner == .accept)
        #expect(configuration.onMalformed == .accept && configuration.allowSHA1Signatures)
        #expect(Configuration().onMalformed == .reject && !Configuration().allowSHA1Signatures)
        #expect(configuration.stateDirectory == "/var/lib/smime-milter-test")
        #expect(configuration.spoolThreshold == 1 << 20)
        #expect(configuration.spoolDirectory == "/var/tmp")
        #expect(configuration.units == "/etc/smime-milter/units")
        #expect(configuration.localDomains == ["dienbien.gov.vn", ".dienbien.gov.vn"])
        #expect(configuration.eventDatabasePath == nil && configuration.eventRetention == 30)
        #expect(configuration.reportMailTo == ["vanphong.ubnd@dienbien.gov.vn", "lanhdao@stttt.dienbien.gov.vn"])
        #expect(configuration.reportMailFrom == "baocao@stttt.dienbien.gov.vn")
        #expect(configuration.metricsListen == .inet(port: 9894, host: "127.0.0.1") && Configuration().metricsListen == nil)
        #expect(Configuration().eventDatabasePath == "/var/lib/smime-milter/events.sqlite")
        #expect(configuration.eventDatabasePasswordFile == "/etc/smime-milter/records-password")
        #expect(configuration.serverName == "mx2.dienbien.gov.vn")
        #expect(configuration.internalHostList.contains("10.20.255.1") && !configuration.internalHostList.contains("10.21.0.1"))
        // The test lists every key the table has.
        for key in Configuration.keys {
            #expect(text.lowercased().contains(key.name.lowercased() + " "), "\(key.name) not covered")
        }
    }

    @Test(arguments: [
        ("Sokcet local:/x", 1, "unknown key 'Sokcet'", "Socket"),
        ("FetchHosts ca.example:http", 1, "FetchHosts entry 'ca.example:http' is not a host", "optionally with :port"),
        ("Mode sign", 1, "Mode 'sign' is unknown", "use s, v or sv"),
        ("\nSignBounces maybe", 2, "'maybe' is not a boolean", "yes or no"),
        ("MaximumSignSize lots", 1, "'lots' is not a size", "50M"),
        ("OnSignFailure drop", 1, "'drop' is not an action", "tempfail"),
        ("RevocationCheck ocsp+crl", 1, "RevocationCheck 'ocsp+crl' is unknown", "crl+fetch or ocsp"),
        ("Socket tcp:25", 1, "is not a socket", "inet:PORT@HOST"),
        ("MetricsListen local:/run/m.sock", 1, "a local socket, which Prometheus cannot scrape", "inet:9894@127.0.0.1"),
        ("MetricsListen inet:99999@127.0.0.1", 1, "is not a port from 1 to 65535", "inet:9894@127.0.0.1"),
        ("AuthservID", 1, "AuthservID has no value", "AuthservID string"),
        ("Mode s\nMode v", 2, "Mode is set twice (first on line 1)", "keep one"),
        ("SessionPoolSize 0", 1, "from 1 to 64", "range"),
        ("SigningTimeout 0", 1, "from 1 to 240", "range"),
        ("\n\nInternalHosts 10.0.0.0/8, mail.example", 3, "'mail.example' is not an IP address", "host names are not looked up"),
        ("InternalHosts 10.0.0.0/33", 1, "has a bad prefix length", "/0 to /32"),
        ("InternalHosts /nonexistent/internal-hosts", 1, "cannot read the internal hosts file", "check the path"),
        ("OnUnauthorizedSigner tempfail", 1, "is not allowed", "accept (send unsigned) or reject"),
        ("ReportMailTo Văn phòng <vanphong.ubnd@dienbien.gov.vn>", 1, "is not a mail address", "local@domain"),
        ("ReportMailFrom baocao", 1, "ReportMailFrom 'baocao' is not a mail address", "local@domain"),
        // Crashes once: an empty user or group, a size past Int.max, a device as hosts file.
        ("UserID :", 1, "UserID ':' is not user or user:group", "smime-milter:smime-milter"),
        ("UserID smime-milter:", 1, "is not user or user:group", "smime-milter"),
        ("UserID :mail", 1, "is not user or user:group", "smime-milter"),
        ("MaximumSignSize 9999999999999G", 1, "'9999999999999G' is too large", "50M"),
        ("SpoolThreshold 9223372036854775807K", 1, "is too large", "50M"),
        ("InternalHosts /dev/zero", 1, "cannot read the internal hosts file", "check the path"),
    ])
    func errorsNameFileLineAndFix(text: String, line: Int, message: String, hint: String) {
        #expect {
            try Configuration.parse(text, file: "/etc/smime-milter/smime-milter.conf")
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.file == "/etc/smime-milter/smime-milter.conf" && error.line == line
                && error.message.contains(message) && (error.hint.contains(hint) || error.message.contains(hint))
        }
    }

    @Test func theShippedSampleListsEveryKeyAndTheMinimalOneParses() throws {
        let sample = try String(contentsOfFile: TestPKI.repositoryRoot + "/conf/smime-milter.conf.sample", encoding: .utf8)
        for key in Configuration.keys {
            #expect(sample.contains("#\(key.name)"), "\(key.name) missing from the sample")
        }
        // Uncommenting every default line gives a valid configuration.
        let uncommented = sample.split(separator: "\n").filter { $0.hasPrefix("#") && $0.dropFirst().first?.isUppercase == true && $0.contains(" ") }
            .map { String($0.dropFirst()) }.joined(separator: "\n")
        #expect(throws: Never.self) { try Configuration.parse(uncommented, file: "sample") }
        // The minimal file is installed unconfigured: refused until the postmaster sets SigningTable
        // or TrustAnchors, then it parses.
        let minimal = try String(contentsOfFile: TestPKI.repositoryRoot + "/conf/smime-milter.conf", encoding: .utf8)
        #expect { try Configuration.parse(minimal, file: "smime-milter.conf") } throws: { error in
            (error as? ConfigurationError)?.message.hasPrefix("not configured yet") == true
        }
        for line in ["#SigningTable", "#TrustAnchors"] {
            #expect(minimal.contains("\n\(line) "))
            #expect(throws: Never.self) {
                try Configuration.parse(minimal.replacingOccurrences(of: "\n\(line) ", with: "\n\(line.dropFirst()) "), file: "c")
            }
        }
        let manual = try String(contentsOfFile: TestPKI.repositoryRoot + "/man/smime-milter.conf.5", encoding: .utf8)
        for key in Configuration.keys {
            #expect(manual.contains(".B \(key.name) "), "\(key.name) missing from smime-milter.conf(5)")
        }
    }
}

/// Every file the daemon reads treats `#` alike (smime-milter.conf(5)): at the start of a line or
/// after white space it starts a comment; inside a word it is part of the word. CRLF line ends
/// are line ends.
@Suite struct CommentTests {
    @Test func theConfigurationKeepsAHashInsideAValue() throws {
        let text = "TrustAnchors /etc/trust#1 # the roots\r\nAuthservID mx#2\r\n#Mode s\r\n  # indented comment\r\nMode v\t# tab before\r\n"
        let configuration = try Configuration.parse(text, file: "c")
        #expect(configuration.trustAnchors == ["/etc/trust#1"])
        #expect(configuration.authservID == "mx#2")
        #expect(configuration.mode == "v")
    }

    @Test func theTablesTreatAHashAsTheConfigurationDoes() throws {
        let signing = try SigningTable.parse("# c\r\n*@a.vn pkcs11:token=PKCS#11;object=k?pin-source=file:/p # key\r\n", file: "s")
        #expect(signing.entries.map(\.key) == ["pkcs11:token=PKCS#11;object=k?pin-source=file:/p"])
        #expect(signing.entries.map(\.line) == [2])
        let units = try Units.parse("*@a.vn Phòng số#1 # comment\r\n  # indented\r\n*@b.vn B\r\n", file: "u")
        #expect(units.entries.map(\.name) == ["Phòng số#1", "B"])
        #expect(units.entries.map(\.line) == [1, 3])
        let signers = try AuthorizedSigners.parse("log#in *@a.vn, *@b.vn # who\r\n#x *@c.vn\r\n", file: "a")
        #expect(signers.patterns == ["log#in": ["*@a.vn", "*@b.vn"]])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("comments-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "10.0.0.0/8 # office\r\n#192.168.0.0/16\r\n\t2001:db8::/32\r\n".write(toFile: directory + "/hosts", atomically: true, encoding: .utf8)
        let hosts = try HostList(entries: [directory + "/hosts"], file: "c", line: 1)
        #expect(hosts.ranges.map(\.description) == ["10.0.0.0/8", "2001:db8:0:0:0:0:0:0/32"])
    }

    /// A word glued to its comment (`value#comment`) is one word: the error names it.
    @Test func aHashInsideAWordIsPartOfItInErrorsToo() {
        #expect {
            try Configuration.parse("Mode v#comment", file: "c")
        } throws: { error in
            (error as? ConfigurationError)?.message.contains("Mode 'v#comment' is unknown") == true
        }
    }
}

@Suite struct HostListTests {
    @Test func rangesMatchIPv4AndIPv6AndFilesNameTheirLines() throws {
        let directory = try TestPKI.shared.temporaryDirectory("hosts")
        try "# LAN\n10.20.0.0/16\n\n192.168.1.0/24 fd00::/8  # lab\nbad-entry\n".write(
            toFile: directory + "/hosts", atomically: true, encoding: .utf8)
        #expect { try HostList(entries: [directory + "/hosts"], file: "c", line: 4) } throws: {
            let error = $0 as? ConfigurationError
            return error?.file == directory + "/hosts" && error?.line == 5
        }
        let hosts = try HostList(entries: ["127.0.0.1", "2001:db8::/32", "172.16.0.0/12"], file: "c")
        #expect(hosts.contains("127.0.0.1") && !hosts.contains("127.0.0.2"))
        #expect(hosts.contains("172.31.255.255") && !hosts.contains("172.32.0.0"))
        #expect(hosts.contains("2001:db8:ffff::1") && hosts.contains("[2001:DB8::1]") && !hosts.contains("2001:db9::1"))
        #expect(!hosts.contains("not an address") && !hosts.contains(""))
        #expect(try HostList(entries: ["0.0.0.0/0"], file: "c").contains("8.8.8.8"))
        #expect(try HostList(entries: ["10.1.2.0/23"], file: "c").contains("10.1.3.200"))
        #expect(try !HostList(entries: ["10.1.2.0/23"], file: "c").contains("10.1.4.0"))
    }
}

@Suite struct AuthorizedSignersTests {
    @Test func loginsMayUseTheirPatternsOnly() throws {
        let table = try AuthorizedSigners.parse(
            "vanthu  vanthu.stttt@dienbien.gov.vn,*@stttt.dienbien.gov.vn\nADMIN *   # postmaster\n", file: "a")
        #expect(table.allows(login: "vanthu", address: "ketoan@stttt.dienbien.gov.vn"))
        #expect(table.allows(login: "VanThu", address: "vanthu.stttt@dienbien.gov.vn"))
        #expect(!table.allows(login: "vanthu", address: "chutich@ubnd.dienbien.gov.vn"))
        #expect(table.allows(login: "admin", address: "anyone@anywhere.vn"))
        #expect(!table.allows(login: "stranger", address: "ketoan@stttt.dienbien.gov.vn"))
        #expect { try AuthorizedSigners.parse("\nvanthu", file: "a") } throws: {
            ($0 as? ConfigurationError)?.line == 2 && "\($0)".contains("has no address patterns")
        }
        #expect { try AuthorizedSigners.parse("vanthu a*b@c", file: "a") } throws: { "\($0)".contains("not a pattern") }
    }
}

@Suite struct SigningTableTests {
    let table = try! SigningTable.parse(
        """
        # unit and staff certificates
        vanthu.stttt@dienbien.gov.vn  pkcs11:token=STTTT-DienBien;object=vanthu?pin-source=file:/p  chain=/c.pem
        *@stttt.dienbien.gov.vn       pkcs11:token=STTTT-DienBien;object=unit-seal?pin-source=file:/p
        *@.dienbien.gov.vn            pkcs11:token=UBND-Tinh;id=%01
        *                             /etc/smime-milter/default.key cert=/etc/smime-milter/default.pem
        """, file: "signing-table")

    @Test func lookupGoesExactThenDomainThenParentThenDefault() {
        #expect(table.lookup("vanthu.stttt@dienbien.gov.vn")?.key.contains("object=vanthu") == true)
        #expect(table.lookup("VanThu.STTTT@DienBien.gov.vn")?.key.contains("object=vanthu") == true)
        #expect(table.lookup("anyone@stttt.dienbien.gov.vn")?.key.contains("object=unit-seal") == true)
        #expect(table.lookup("x@sotc.dienbien.gov.vn")?.pattern == "*@.dienbien.gov.vn")
        #expect(table.lookup("x@deep.sotc.dienbien.gov.vn")?.pattern == "*@.dienbien.gov.vn")
        #expect(table.lookup("x@gmail.com")?.pattern == "*")
        #expect(table.lookup("vanthu.stttt@dienbien.gov.vn")?.chain == "/c.pem")
    }

    @Test func noMatchWithoutADefault() throws {
        let small = try SigningTable.parse("*@stttt.dienbien.gov.vn pkcs11:token=T;object=k", file: "t")
        #expect(small.lookup("x@dienbien.gov.vn") == nil)
        #expect(small.lookup("x@stttt.dienbien.gov.vn") != nil)
    }

    @Test func badLinesAreNamed() {
        #expect { try SigningTable.parse("\n*@x.vn", file: "t") } throws: {
            ($0 as? ConfigurationError)?.line == 2 && "\($0)".contains("has no key")
        }
        #expect { try SigningTable.parse("x*y@z pkcs11:token=a", file: "t") } throws: { "\($0)".contains("not a pattern") }
        #expect { try SigningTable.parse("* /k.pem", file: "t") } throws: { "\($0)".contains("cert=FILE") }
        #expect { try SigningTable.parse("* pkcs11:token=a color=red", file: "t") } throws: { "\($0)".contains("unknown option") }
    }

    /// The whole path: configuration -> table -> token signer -> a signature openssl accepts.
    @Test func aTableEntrySignsWithTheTokenKey() throws {
        let pki = try TestPKI.shared
        let table = try SigningTable.parse(
            "*@dienbien.gov.vn \(pki.keyURI(token: "STTTT-DienBien", object: "unit-seal")) chain=\(pki.path("ca/chain.pem"))",
            file: "t")
        var configuration = Configuration()
        configuration.pkcs11Module = pki.softHSMModule
        let entry = try #require(table.lookup("stttt@dienbien.gov.vn"))
        let signer = try SignerLoader.signer(for: entry, configuration: configuration)
        let message = Array("From: stttt@dienbien.gov.vn\r\nSubject: x\r\n\r\nHello\r\n".utf8)
        let signed = try Signing.sign(
            message: message, signer: signer, digest: configuration.digestAlgorithm,
            signingTimeSkew: TimeInterval(configuration.signingTimeSkew))
        let result = try IndependentTools.shared.opensslVerify(message: signed)
        #expect(result.ok, "\(result.output)")
    }
}
