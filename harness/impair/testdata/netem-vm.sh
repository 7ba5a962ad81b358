#!/bin/sh
# Runs the netem engine's privileged tests on a kernel that has sch_netem: Debian bookworm's own 6.1
# kernel booted under qemu (software emulation), for machines whose kernel lacks netem. A manual check,
# not part of `go test`: it needs root, qemu-system-x86 and mmdebstrap (apt-get install
# qemu-system-x86 mmdebstrap), about 2 minutes and 4 GB in $WORK.
#
#   sh harness/impair/testdata/netem-vm.sh ['TestNetemEngine|TestDetect']
#
# Under emulation timing is loose (a 20 ms netem delay measured ~24 ms); what this checks is that the
# kernel accepts the engine's messages and that tc reads back the requested parameters.
set -eu
RUN=${1:-'TestNetemEngine|TestDetect'}
WORK=${WORK:-/tmp/fl-netem-vm}
HERE=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$WORK"
if [ ! -f "$WORK/rootfs.tar" ]; then
	# The machine's own apt sources (never a mirror name in the repository).
	mmdebstrap --variant=apt --include=linux-image-amd64,initramfs-tools,kmod,iproute2,nftables,busybox \
		bookworm "$WORK/rootfs.tar" /etc/apt/sources.list.d/debian.sources
fi
rm -rf "$WORK/root" && mkdir -p "$WORK/root"
tar -xf "$WORK/rootfs.tar" -C "$WORK/root"
(cd "$HERE" && CGO_ENABLED=0 go test -c -o "$WORK/root/impair.test" .)
cat > "$WORK/root/fltest.sh" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mkdir -p /run/netns
ip link set lo up
echo "=== guest kernel \$(uname -r)"
cd /tmp && /impair.test -test.run '$RUN' -test.v -test.timeout 300s 2>&1
echo "=== done rc=\$?"
echo o > /proc/sysrq-trigger
while :; do :; done
EOF
chmod +x "$WORK/root/fltest.sh"
rm -f "$WORK/root.img"
mkfs.ext4 -q -d "$WORK/root" -F "$WORK/root.img" 3G
KERNEL=$(ls "$WORK"/root/boot/vmlinuz-* | head -1)
INITRD=$(ls "$WORK"/root/boot/initrd.img-* | head -1)
timeout 900 qemu-system-x86_64 -m 2048 -smp 2 -kernel "$KERNEL" -initrd "$INITRD" \
	-append "root=/dev/vda rw console=ttyS0 init=/fltest.sh panic=-1 quiet" \
	-drive "file=$WORK/root.img,format=raw,if=virtio" -nographic -no-reboot |
	sed -n '/=== guest kernel/,/=== done/p'
