#!/usr/bin/env bash
# Builds the lab's guest for harness/vm: a Debian kernel with the modules this machine's kernel lacks
# (sch_netem, sch_plug) and a root filesystem with the lab's daemons, made offline from this machine's own apt
# sources (the suite swapped, as images/build.sh does), booted by qemu under software emulation.
#
#   SUITE=bookworm bash images/vm.sh      (make vm-image; idempotent, FORCE=1 rebuilds)
#
# Output in $OUT/vm/$SUITE/ (default images/out/vm/bookworm): root.img (ext4, booted read-only with
# qemu -snapshot), vmlinuz and initrd.img (the package's own, loading virtio and ext4), kernel.txt (the guest
# kernel's release, e.g. 6.1.0-41-amd64, and the package version), build-times.log. The guest's /sbin/fl-init
# mounts the host's 9p share (tag "host") on /host, runs /host/run.sh with its output in /host/out.log and its
# exit status in /host/rc, and powers off.
set -euo pipefail
SUITE=${SUITE:-bookworm}
OUT=${OUT:-images/out}
FORCE=${FORCE:-0}
# The daemons and libpcap (the host's faultlab binary links it) are there for runs of the lab inside the guest
# (faultlab vm run).
PKGS=${VM_PKGS:-linux-image-amd64,initramfs-tools,kmod,mount,iproute2,nftables,procps,e2fsprogs,libpcap0.8,haproxy,nginx-light,mariadb-server}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$OUT/vm/$SUITE

die() { echo "vm-image: $*" >&2; exit 1; }

# The tools to build and boot: installed from Debian's packages when missing (CI has no stdin).
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if ((${#need[@]})); then
	echo "vm-image: installing ${need[*]}"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${need[@]}" >/dev/null; } || die "cannot install ${need[*]}: apt-get install ${need[*]}"
fi
[[ $(id -u) == 0 ]] || die "needs root (mmdebstrap unpacks device nodes and owners)"

if [[ $FORCE != 1 && -f $DIR/kernel.txt && -f $DIR/root.img ]]; then
	echo "vm-image: $DIR is built ($(head -1 "$DIR/kernel.txt")); FORCE=1 rebuilds"
	exit 0
fi
mkdir -p "$DIR"
start=$(date +%s)
SUITE=$SUITE bash "$HERE/build.sh" --sources "$DIR/sources"
tmp=$(mktemp -d "$DIR/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "vm-image: building the $SUITE guest with mmdebstrap ($PKGS)"
# Daemons must not start inside the chroot while it is built.
mmdebstrap --quiet --variant=apt --include="$PKGS" \
	--customize-hook='printf "#!/bin/sh\nexit 101\n" >"$1/usr/sbin/policy-rc.d"; chmod +x "$1/usr/sbin/policy-rc.d"' \
	"$SUITE" "$tmp/rootfs.tar" "$DIR/sources" || die "mmdebstrap failed"
mkdir "$tmp/root"
tar -xf "$tmp/rootfs.tar" -C "$tmp/root"
rm "$tmp/rootfs.tar"

cat >"$tmp/root/sbin/fl-init" <<'EOF'
#!/bin/sh
# faultlab guest init (images/vm.sh): mount the host's share, run its run.sh, power off.
# The root filesystem is qemu's -snapshot of the image: writable, nothing kept.
mount -o remount,rw /
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mkdir -p /run/netns /host /dev/shm /dev/pts
mount -t tmpfs shm /dev/shm
mount -t devpts devpts /dev/pts
ip link set lo up
hostname faultlab-guest
printf '127.0.0.1\tlocalhost\n127.0.1.1\tfaultlab-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n' >/etc/hosts
modprobe 9pnet_virtio && modprobe 9p
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host /host; then
	echo "fl-init: kernel $(uname -r), running /host/run.sh"
	cd /host && PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin sh /host/run.sh >/host/out.log 2>&1
	echo $? >/host/rc
	sync
else
	echo "fl-init: cannot mount the host's 9p share"
fi
echo o >/proc/sysrq-trigger
sleep 30
EOF
chmod +x "$tmp/root/sbin/fl-init"
mkdir -p "$tmp/root/host"
kernel=$(ls "$tmp/root/boot/" | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
[[ -n $kernel ]] || die "no kernel in the rootfs's /boot (is linux-image-amd64 in VM_PKGS?)"
cp "$tmp/root/boot/vmlinuz-$kernel" "$tmp/vmlinuz"
cp "$tmp/root/boot/initrd.img-$kernel" "$tmp/initrd.img" || die "no initrd.img-$kernel (initramfs-tools?)"
pkg=$(awk -v k="linux-image-$kernel" '$1 == "Package:" { p = $2 } $1 == "Version:" && p == k { print $2 }' \
	"$tmp/root/var/lib/dpkg/status")
size=$(du -sm "$tmp/root" | cut -f1)
mkfs.ext4 -q -L faultlab -d "$tmp/root" -F "$tmp/root.img" $((size * 3 / 2 + 512))M || die "mkfs.ext4 failed"
printf '%s\nlinux-image-%s %s\n%s\n' "$kernel" "$kernel" "$pkg" "$SUITE" >"$tmp/kernel.txt"
mv "$tmp/vmlinuz" "$tmp/initrd.img" "$tmp/root.img" "$DIR/"
mv "$tmp/kernel.txt" "$DIR/" # last: its presence means the image is complete
secs=$(($(date +%s) - start))
echo "vm-image: $DIR: kernel $kernel ($pkg), root.img $(du -h --apparent-size "$DIR/root.img" | cut -f1), built in $secs s"
echo "$(date -u +%FT%TZ) $SUITE $kernel $pkg ${secs}s" >>"$DIR/build-times.log"
