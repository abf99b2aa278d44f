package dev.vhostnet.backend;

/**
 * The reverse-ARP announcement a switch expects after a guest moved (SEND_RARP): broadcast, EtherType
 * 0x8035, "request reverse" for the guest's own MAC, so that learning switches update their tables.
 */
final class RarpFrame {
    static final int LENGTH = 60; // minimum Ethernet frame without FCS

    private RarpFrame() {
    }

    static byte[] announce(final byte[] mac) {
        final byte[] f = new byte[LENGTH];
        for (int i = 0; i < 6; i++) {
            f[i] = (byte) 0xFF;           // destination: broadcast
            f[6 + i] = mac[i];            // source: the guest
        }
        f[12] = (byte) 0x80;              // EtherType RARP
        f[13] = 0x35;
        f[14] = 0x00;                     // hardware type Ethernet
        f[15] = 0x01;
        f[16] = 0x08;                     // protocol type IPv4
        f[17] = 0x00;
        f[18] = 6;                        // hardware address length
        f[19] = 4;                        // protocol address length
        f[20] = 0x00;                     // opcode 3: request reverse
        f[21] = 0x03;
        System.arraycopy(mac, 0, f, 22, 6); // sender hardware address; sender IP 0.0.0.0
        System.arraycopy(mac, 0, f, 32, 6); // target hardware address; target IP 0.0.0.0
        return f;
    }
}
