extension TestPKI {
    /// `FetchHosts` for this PKI's CA servers: its certificates name 127.0.0.1 on the CRL and OCSP
    /// ports chosen when it was made, loopback on other ports than 80, which the fetch rules
    /// refuse unless listed.
    public var fetchHosts: [String] { ["127.0.0.1:\(crlPort)", "127.0.0.1:\(ocspPort)"] }
}
