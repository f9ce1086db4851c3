public import Gateway
import Token

/// A province-sized daemon for measuring and checking a scrape: `units` units with five counters
/// each, and `tokens` signing-table lines on tokens of their own, each naming a signer
/// certificate and chain, every token locked so that each has its state series. Used by
/// `smime-milter bench metrics` and by the test that checks what such a scrape lists.
public enum ScrapeSample {
    public static func gateway(units: Int, tokens: Int, certificate: String, chain: String) throws -> Gateway {
        let unitsText = (0..<units).map { "*@.unit\($0).dienbien.gov.vn  Đơn vị \($0)" }.joined(separator: "\n")
        let tableText = (0..<tokens).map {
            "*@line\($0).unit\($0 % units).dienbien.gov.vn pkcs11:token=Token-\($0);object=seal?pin-source=file:/nonexistent "
                + "cert=\(certificate) chain=\(chain)"
        }.joined(separator: "\n")
        let table = try SigningTable.parse(tableText, file: "signing-table")
        let statistics = Statistics()
        for unit in 0..<units {
            for counter in ["signed", "skipped.no-signer", "failed.token", "verified.pass", "verified.fail"] {
                statistics.count(counter, units: ["Đơn vị \(unit)"])
            }
        }
        let gateway = Gateway(
            configuration: Configuration(), signingTable: table, authorizedSigners: nil, verifier: nil,
            units: try Units.parse(unitsText, file: "units"), statistics: statistics)
        for entry in table.entries {
            gateway.tokenTracker.failed(entry, TokenError(.locked, operation: "C_Login", detail: "locked"))
        }
        return gateway
    }
}
