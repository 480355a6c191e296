# The devices of our QEMU build (qemu/build.sh); everything else is left out.
# The microvm machine brings its own board devices (serial port, PIT, PIC,
# IOAPIC, RTC, virtio-mmio transports).
CONFIG_MICROVM=y
# the guest image
CONFIG_VIRTIO_BLK=y
# entropy for the guest at boot
CONFIG_VIRTIO_RNG=y
# free page reporting
CONFIG_VIRTIO_BALLOON=y
# events, stdio, enter and agent channels
CONFIG_VIRTIO_SERIAL=y
# pod networks
CONFIG_VIRTIO_NET=y
# the pod's files and volumes: 9p, or virtiofs through vhost-user
CONFIG_VIRTIO_9P=y
CONFIG_VHOST_USER_FS=y
