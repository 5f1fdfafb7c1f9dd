package io.tessera.bench.peers;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.backend.Backend;
import io.tessera.bench.variants.LinearVariantPeer;
import io.tessera.bench.variants.VariantsSection;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The PyTorch peer of the linear-time variants computes what Tessera computes: Linformer (the same
 * E and F), the Performer (the same random features ω), linear attention (elu + 1) and Nyström
 * (segment-mean landmarks, six pseudo-inverse iterations), each within 2e-4 of the float64
 * definition at n = 256 (H = 2, D = 64, N(0, 1) inputs; float32 rounding through products of
 * depth ≤ 256 with outputs of order 1 is ~1e-5), and Tessera's simd backend beside it. Runs with
 * the peers profile:
 * ./tessera mvn -Ppeers -pl bench -am verify -Dtest=LinearVariantPeerTest -Dsurefire.failIfNoSpecifiedTests=false
 */
class LinearVariantPeerTest {
    private static final double TOLERANCE = 2e-4;

    @Test
    void everyVariantMatchesTheFloat64Definition() throws Exception {
        try (LinearVariantPeer peer = VariantsSection.findPeer()) {
            assertThat(peer).isNotNull();
            assertThat(peer.unavailableReason()).isNull();
            List<VariantsSection.PeerRow> rows = VariantsSection.comparePeer(peer, Backend.named("simd"), 2, 256, new int[] {64, 64, 0, 16}, 1f, true, 0, 0, 1);
            assertThat(rows).hasSize(4);
            for (VariantsSection.PeerRow r : rows) {
                assertThat(r.tesseraError()).as("Tessera %s", r.variant()).isLessThanOrEqualTo(TOLERANCE);
                assertThat(r.peerError()).as("PyTorch %s", r.variant()).isLessThanOrEqualTo(TOLERANCE);
            }
        }
    }
}
