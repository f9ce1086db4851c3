extension TestPKI {
    /// `FetchHosts` for the test PKI's CA servers: its certificates name 127.0.0.1:18080 (CRLs,
    /// CA certificates) and 127.0.0.1:18081 (OCSP), loopback on other ports than 80, which the
    /// fetch rules refuse unless listed.
    public static let fetchHosts = ["127.0.0.1:18080", "127.0.0.1:18081"]
}
