package io.tessera.bench.peers;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.bench.report.OracleCheck;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The PyTorch peer of the score-modifier and bf16 benchmarks computes what Tessera computes: ALiBi
 * (as SDPA's float mask), soft-capping, both, dense and causal, and SDPA on bf16 inputs, each within
 * the float64 oracle's contract for that modifier (bf16: plus one rounding of the output), Tessera's
 * simd backend beside it. Runs with the peers profile:
 * ./tessera mvn -Ppeers -pl bench -am verify -Dtest=SdpaVariantPeerTest -Dsurefire.failIfNoSpecifiedTests=false
 */
class SdpaVariantPeerTest {

    @Test
    void everyVariantMatchesTheOracleWithTheSameModifier() throws Exception {
        try (SdpaVariantPeer peer = SdpaVariantBenchmark.find("djl-sdpa-variant")) {
            assertThat(peer.unavailableReason()).isNull();
            List<OracleCheck> checks = SdpaVariantBenchmark.checks(peer, 1);
            assertThat(checks).hasSize(16);
            for (OracleCheck c : checks) {
                assertThat(c.maxAbsError()).as("%s, %s", c.engineLabel(), c.pattern()).isLessThanOrEqualTo(c.tolerance());
            }
        }
    }
}
