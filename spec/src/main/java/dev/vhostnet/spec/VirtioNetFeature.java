package dev.vhostnet.spec;

/** virtio-net device feature bits. */
public final class VirtioNetFeature {
    public static final int CSUM = 0;
    public static final int GUEST_CSUM = 1;
    public static final int CTRL_GUEST_OFFLOADS = 2;
    public static final int MTU = 3;
    public static final int MAC = 5;
    public static final int GSO = 6;
    public static final int GUEST_TSO4 = 7;
    public static final int GUEST_TSO6 = 8;
    public static final int GUEST_ECN = 9;
    public static final int GUEST_UFO = 10;
    public static final int HOST_TSO4 = 11;
    public static final int HOST_TSO6 = 12;
    public static final int HOST_ECN = 13;
    public static final int HOST_UFO = 14;
    public static final int MRG_RXBUF = 15;
    public static final int STATUS = 16;
    public static final int CTRL_VQ = 17;
    public static final int CTRL_RX = 18;
    public static final int CTRL_VLAN = 19;
    public static final int CTRL_RX_EXTRA = 20;
    public static final int GUEST_ANNOUNCE = 21;
    public static final int MQ = 22;
    public static final int CTRL_MAC_ADDR = 23;
    public static final int DEVICE_STATS = 50;
    public static final int HASH_TUNNEL = 51;
    public static final int VQ_NOTF_COAL = 52;
    public static final int NOTF_COAL = 53;
    public static final int GUEST_USO4 = 54;
    public static final int GUEST_USO6 = 55;
    public static final int HOST_USO = 56;
    public static final int HASH_REPORT = 57;
    public static final int GUEST_HDRLEN = 59;
    public static final int RSS = 60;
    public static final int RSC_EXT = 61;
    public static final int STANDBY = 62;
    public static final int SPEED_DUPLEX = 63;

    /** Device status bits in {@code virtio_net_config.status}. */
    public static final int S_LINK_UP = 1;
    public static final int S_ANNOUNCE = 2;

    private VirtioNetFeature() {
    }
}
