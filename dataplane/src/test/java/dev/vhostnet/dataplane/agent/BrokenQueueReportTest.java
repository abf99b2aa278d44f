package dev.vhostnet.dataplane.agent;

import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.virtq.QueueError;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** One log line per breakage of a queue, also when it breaks again with the same error. */
class BrokenQueueReportTest {
    @Test
    void aQueueBrokenAgainWithTheSameErrorIsReportedAgain() {
        final VirtioNetPort port = new VirtioNetPort("p");
        final Dataplane dataplane = new Dataplane(new VirtioNetPort[] {port}, new VirtioNetPort[1], PollMode.ADAPTIVE, -1);
        final Logger log = Logger.getLogger(Dataplane.class.getName());
        final List<String> lines = new CopyOnWriteArrayList<>();
        final Handler capture = new Handler() {
            @Override
            public void publish(final LogRecord record) {
                lines.add(record.getMessage());
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        log.addHandler(capture);
        try {
            dataplane.reportBrokenQueues();
            assertEquals(List.of(), lines);
            port.queue(1).fail(QueueError.RING_UNMAPPED);
            dataplane.reportBrokenQueues();
            dataplane.reportBrokenQueues();
            assertEquals(1, lines.size(), lines.toString());
            // The front-end sets the ring up again and breaks it the same way before the reporter looks.
            port.queue(1).reset();
            port.queue(1).fail(QueueError.RING_UNMAPPED);
            dataplane.reportBrokenQueues();
            assertEquals(2, lines.size(), lines.toString());
            assertEquals("p queue 1 broken: " + QueueError.RING_UNMAPPED.description()
                + "; it stays stopped until the front-end sets it up again", lines.get(1));
            // Broken, then reset before the reporter looks: still one line, with the reason.
            port.queue(0).fail(QueueError.BUFFER_UNMAPPED);
            port.queue(0).reset();
            dataplane.reportBrokenQueues();
            assertEquals(3, lines.size(), lines.toString());
            dataplane.reportBrokenQueues();
            assertEquals(3, lines.size(), lines.toString());
        } finally {
            log.removeHandler(capture);
            dataplane.close();
        }
    }
}
