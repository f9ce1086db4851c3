internal import CMilter

/// The libmilter binding.
public enum Milter {
    /// The libmilter version this binary was built against, as major.minor.patch.
    public static var libraryVersion: String {
        var major: UInt32 = 0
        var minor: UInt32 = 0
        var patch: UInt32 = 0
        _ = smfi_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}
