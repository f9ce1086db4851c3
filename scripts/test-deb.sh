#!/usr/bin/env bash
# The Debian package on a Debian 12 with no Swift: builds it (make deb), makes a second package
# from it (a rebuild with a changed sample and configuration file), then, in a fresh root made
# by mmdebstrap from this machine's apt sources, installs, configures with a SoftHSM token,
# upgrades and purges it (scripts/test-deb-inside.sh does the checks in that root).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/make-deb.sh
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
work=state/test-deb
rm -rf "$work"
mkdir -p "$work/debs"
cp "dist/smime-milter_${version}_amd64.deb" "$work/debs/"

# The rebuild: same binary, a changed sample and a changed default configuration file.
next="${version}+rebuild1"
dpkg-deb -R "dist/smime-milter_${version}_amd64.deb" "$work/next"
echo "# sample changed in $next" >>"$work/next/usr/share/doc/smime-milter/examples/smime-milter.conf.sample"
echo "# default changed in $next" >>"$work/next/etc/smime-milter/smime-milter.conf"
sed -i "s/^Version: .*/Version: $next/" "$work/next/DEBIAN/control"
(cd "$work/next" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | sort -z |
    xargs -0 md5sum >DEBIAN/md5sums)
dpkg-deb --root-owner-group -Zxz --build "$work/next" "$work/debs/smime-milter_${next}_amd64.deb" >/dev/null
rm -rf "$work/next"

# A SoftHSM token with a unit key and the test CA, for check-config inside the root.
bash scripts/make-test-pki.sh "$work/pki" >/dev/null
mkdir -p "$work/srv/pki"
cp -a "$work/pki/tokens" "$work/pki/pins" "$work/pki/ca" "$work/srv/pki/"
cp scripts/test-deb-inside.sh "$work/srv/"

# The machine's own apt sources, in the formats mmdebstrap reads.
sources=()
for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$file" ] && sources+=("$file")
done

mmdebstrap --variant=apt --quiet bookworm /dev/null "${sources[@]}" \
    --customize-hook="mkdir -p \"\$1/srv\" && cp -a $work/srv/. \"\$1/srv/\" && cp -a $work/debs \"\$1/srv/debs\"" \
    --customize-hook="cp /etc/resolv.conf \"\$1/etc/resolv.conf\"" \
    --customize-hook="chroot \"\$1\" bash /srv/test-deb-inside.sh $version $next"
echo "test-deb: install, configure, upgrade and purge passed in a fresh Debian 12 root"
