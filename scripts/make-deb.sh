#!/usr/bin/env bash
# Builds dist/smime-milter_VERSION_amd64.deb with dpkg-buildpackage, from a copy of the source
# tree under state/deb (dpkg-buildpackage writes its results beside the source directory, and
# the copy keeps them inside the repository), then runs lintian on it.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
work=state/deb
source="$work/smime-milter-$version"
mkdir -p "$source" dist

# The files git knows (tracked, and new ones not ignored), copied over the previous copy so that
# its .build-deb stays and the Swift build is incremental.
git ls-files -z --cached --others --exclude-standard | rsync -a --from0 --files-from=- ./ "$source/"

rm -f "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes
(cd "$source" && dpkg-buildpackage -b -us -uc)
cp "$work/smime-milter_${version}_amd64.deb" dist/
echo "built dist/smime-milter_${version}_amd64.deb"

# Errors fail the build; warnings are listed (debian/README.source says why each one stays).
lintian --fail-on error --suppress-tags-from-file /dev/null "dist/smime-milter_${version}_amd64.deb"
