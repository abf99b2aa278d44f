package dev.vhostnet.e2e;

/** What a guest does in the scenario; the name is passed to guest-init.sh as e2e.role. */
public enum GuestRole {
    /** Listens with nc, stores what arrives, prints RECV_MD5 and sends the md5 back. */
    RECEIVER,
    /** Generates a random payload, prints SENT_MD5, sends it and prints the receiver's ACK_MD5. */
    SENDER;

    String kernelName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
