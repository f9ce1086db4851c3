/// The release, as `--version` prints it. debian/changelog, CHANGELOG.md and the manual pages
/// carry the same number; a test holds them together.
let smimeMilterVersion = "0.3.2"
