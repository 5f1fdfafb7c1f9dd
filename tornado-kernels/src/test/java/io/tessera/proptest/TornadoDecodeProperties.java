package io.tessera.proptest;

import static io.tessera.proptest.TornadoAttentionProperties.tornado;
import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.pattern.Pattern;
import io.tessera.proptest.PagedAttentionProperties.Filled;
import io.tessera.proptest.PagedAttentionProperties.Setup;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.tornado.DeviceRun;
import io.tessera.tornado.TornadoBackend;
import java.lang.foreign.Arena;
import net.jqwik.api.Example;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * A decode step (q-length 1..16) against a paged KV cache on the device, through the tornado
 * backend's decode kernel ({@code PagedAttentionDevice}): checked against the float64 oracle on the
 * gathered keys and values, with free pool slots poisoned with NaN, every pattern of the CPU suite;
 * every step ran the decode kernel on the device (no bailout). Across steps: the pools stay on the
 * device, an appended token costs O(new tokens) bytes to the device, and one plan serves every
 * live length.
 */
class TornadoDecodeProperties {

    @Provide
    Arbitrary<Setup> setups() { return new PagedAttentionProperties().setups(); }

    @Provide
    Arbitrary<Pattern> patterns() { return new PagedAttentionProperties().patterns(); }

    @Property(tries = 12)
    void decodeOnTheDeviceEqualsTheOracleOnTheGatheredCache(@ForAll("setups") Setup s, @ForAll("patterns") Pattern pattern) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = PagedAttentionProperties.fill(arena, s, 1, true);
            PagedAttention decode = PagedAttention.of(pattern).on(tornado());
            for (int seq = 0; seq < s.sequences(); seq++) {
                Tensor q = Tensor.randomNormal(arena, s.seed() + 30 + seq, 1f, 1, s.heads(), s.qLen(), s.headDim());
                Tensor out = Tensor.zeros(arena, 1, s.heads(), s.qLen(), s.valueDim()), lse = Tensor.zeros(arena, 1, s.heads(), s.qLen());
                decode.forward(f.cache(), seq, q, out, lse);
                decodedOnDevice();
                int length = f.cache().length(seq);
                double scale = 1.0 / Math.sqrt(s.headDim());
                var mask = decode.pattern().asMask(s.qLen(), length);
                Tensor k = f.keys()[seq], v = f.values()[seq];
                DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, scale);
                DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, mask, scale);
                Tolerance tolerance = Tolerance.exact(q, k, v, scale, naive, oracle);
                assertThat(Tolerance.maxError(out, oracle.output())).as("output of sequence %d (length %d) under %s", seq, length, decode)
                        .isLessThanOrEqualTo(tolerance.output());
                assertThat(Tolerance.maxError(lse, oracle.logSumExp())).as("LSE of sequence %d under %s", seq, decode)
                        .isLessThanOrEqualTo(tolerance.logSumExp());
            }
        }
    }

    /** The last call ran the decode kernel on the device: TornadoVM's profiler saw kernel time there (0 = bailout to Java). */
    static DeviceRun decodedOnDevice() {
        DeviceRun run = TornadoBackend.lastRun();
        assertThat(run.kernel()).isEqualTo("decode");
        assertThat(run.deviceKernelNanos()).as("device kernel time of %s (0 = bailout to Java)", run).isPositive();
        return run;
    }

    /**
     * A generation loop: a prompt, then one token appended and decoded per step. After the first
     * step (which builds the plan and sends the pools whole), each step reuses the plan, uploads
     * exactly the new token's kvHeads rows, and sends the device the same number of bytes at every
     * length, a small fraction of the pool; every step matches the oracle. Then a sequence is
     * released and its pages handed to another one: the device notices the pages' new contents.
     */
    @Example
    void appendingATokenSendsOnlyTheNewTokenAndReusesThePlan() {
        int kvHeads = 2, group = 3, d = 16, pageSize = 8, pages = 96, prompt = 150, steps = 40;
        try (Arena arena = Arena.ofShared()) {
            KvCache cache = KvCache.allocate(arena, 2, pages, pageSize, kvHeads, d, d);
            cache.keyStorage().fill(Float.NaN);
            cache.valueStorage().fill(Float.NaN);
            int total = prompt + steps;
            Tensor keys = Tensor.randomNormal(arena, 1, 1f, 1, kvHeads, total, d), values = Tensor.randomNormal(arena, 2, 1f, 1, kvHeads, total, d);
            cache.append(0, keys.slice(2, 0, prompt), values.slice(2, 0, prompt));
            PagedAttention decode = PagedAttention.of(Pattern.causal().and(Pattern.slidingWindow(100, 0).or(Pattern.keyPrefix(3)))).on(tornado());
            long poolBytes = 2L * pages * pageSize * kvHeads * d * Float.BYTES;
            long stepBytes = -1;
            for (int step = 0; step < steps; step++) {
                int length = prompt + step + 1;
                cache.append(0, keys.slice(2, length - 1, length), values.slice(2, length - 1, length));
                DeviceRun run = decodeAndCheck(arena, decode, cache, 0, keys.slice(2, 0, length), values.slice(2, 0, length), group, step);
                if (step == 0) {
                    decodedOnDevice();
                    assertThat(run.firstExecution()).as("the first step builds the plan").isTrue();
                    continue;
                }
                assertThat(run.firstExecution()).as("step %d (length %d) reuses the plan", step, length).isFalse();
                assertThat(run.executions()).as("step %d executions", step).isEqualTo(1);
                assertThat(run.stagedRows()).as("key/value rows uploaded at step %d", step).isEqualTo(kvHeads);
                assertThat(run.bytesToDevice()).as("bytes to the device at step %d, pool %d bytes", step, poolBytes).isLessThan(poolBytes / 10);
                if (stepBytes < 0) stepBytes = run.bytesToDevice();
                assertThat(run.bytesToDevice()).as("bytes to the device at step %d (length %d)", step, length).isEqualTo(stepBytes);
                decodedOnDevice();
            }
            // Sequence 0's pages go back to the pool and sequence 1 gets them, with other contents.
            cache.release(0);
            Tensor k1 = Tensor.randomNormal(arena, 3, 1f, 1, kvHeads, 60, d), v1 = Tensor.randomNormal(arena, 4, 1f, 1, kvHeads, 60, d);
            cache.append(1, k1, v1);
            assertThat(cache.page(1, 0)).as("sequence 1 reuses a page sequence 0 held").isLessThan((total + pageSize - 1) / pageSize);
            DeviceRun run = decodeAndCheck(arena, decode, cache, 1, k1, v1, group, steps);
            decodedOnDevice();
            assertThat(run.firstExecution()).isFalse();
            assertThat(run.stagedRows()).as("the reused pages' rows are sent again, all of them").isEqualTo(60L * kvHeads);
        }
    }

    /**
     * A backlog larger than the staging budget (a long chunk appended between two steps) is sent by
     * a new plan, whose first execution sends the pools whole; the step after it stages one token again.
     */
    @Example
    void aLargeBacklogRebuildsThePlanAndStaysExact() {
        int kvHeads = 1, group = 2, d = 8, pageSize = 4;
        try (Arena arena = Arena.ofShared()) {
            KvCache cache = KvCache.allocate(arena, 1, 80, pageSize, kvHeads, d, d);
            Tensor keys = Tensor.randomNormal(arena, 1, 1f, 1, kvHeads, 300, d), values = Tensor.randomNormal(arena, 2, 1f, 1, kvHeads, 300, d);
            PagedAttention decode = PagedAttention.of(Pattern.causal()).on(tornado());
            cache.append(0, keys.slice(2, 0, 10), values.slice(2, 0, 10));
            assertThat(decodeAndCheck(arena, decode, cache, 0, keys.slice(2, 0, 10), values.slice(2, 0, 10), group, 0).firstExecution()).isTrue();
            decodedOnDevice();
            cache.append(0, keys.slice(2, 10, 299), values.slice(2, 10, 299));   // 289 rows: more than 64 staging buffers of 1 row
            DeviceRun rebuilt = decodeAndCheck(arena, decode, cache, 0, keys.slice(2, 0, 299), values.slice(2, 0, 299), group, 1);
            decodedOnDevice();
            assertThat(rebuilt.firstExecution()).as("a new plan sends the pools whole").isTrue();
            assertThat(rebuilt.stagedRows()).isZero();
            cache.append(0, keys.slice(2, 299, 300), values.slice(2, 299, 300));
            DeviceRun next = decodeAndCheck(arena, decode, cache, 0, keys, values, group, 2);
            decodedOnDevice();
            assertThat(next.firstExecution()).isFalse();
            assertThat(next.stagedRows()).isEqualTo(kvHeads);
        }
    }

    /** One decode step of {@code seq} against the oracle over {@code k}, {@code v} (its cache contents); returns the run. */
    private static DeviceRun decodeAndCheck(Arena arena, PagedAttention decode, KvCache cache, int seq, Tensor k, Tensor v, int group, int step) {
        int heads = cache.kvHeads() * group, d = cache.headDim();
        Tensor q = Tensor.randomNormal(arena, 100 + step, 1f, 1, heads, 1, d);
        Tensor out = Tensor.zeros(arena, 1, heads, 1, cache.valueDim()), lse = Tensor.zeros(arena, 1, heads, 1);
        decode.forward(cache, seq, q, out, lse);
        DeviceRun run = TornadoBackend.lastRun();   // the caller checks its copies first, then that it decoded on the device
        double scale = 1.0 / Math.sqrt(d);
        var mask = decode.pattern().asMask(1, cache.length(seq));
        DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, scale);
        Tolerance tolerance = Tolerance.exact(q, k, v, scale, DenseReference.naiveFloat32(q, k, v, mask, scale), oracle);
        assertThat(Tolerance.maxError(out, oracle.output())).as("output at step %d", step).isLessThanOrEqualTo(tolerance.output());
        assertThat(Tolerance.maxError(lse, oracle.logSumExp())).as("LSE at step %d", step).isLessThanOrEqualTo(tolerance.logSumExp());
        return run;
    }

    /**
     * A half-precision cache (F16, BF16) stays 16-bit on the device: an appended token uploads its
     * kvHeads rows of 2-byte elements (half the bytes of an F32 cache's), and the step matches the
     * oracle on the stored tokens. Outputs are F32: another type is rejected by name.
     */
    @Example
    void halfPrecisionCachesStayHalfOnTheDevice() {
        int kvHeads = 2, group = 2, heads = kvHeads * group, d = 24, pageSize = 8;
        for (ElementType type : new ElementType[] {ElementType.F16, ElementType.BF16}) {
            try (Arena arena = Arena.ofShared()) {
                KvCache cache = KvCache.allocate(arena, type, 1, 12, pageSize, kvHeads, d, d);
                cache.keyStorage().fill(Float.NaN);
                cache.valueStorage().fill(Float.NaN);
                Tensor keys = Tensor.randomNormal(arena, 1, 1f, 1, kvHeads, 60, d).to(arena, type).to(arena, ElementType.F32);
                Tensor values = Tensor.randomNormal(arena, 2, 1f, 1, kvHeads, 60, d).to(arena, type).to(arena, ElementType.F32);
                PagedAttention decode = PagedAttention.of(Pattern.causal().and(Pattern.slidingWindow(30, 0))).on(tornado());
                cache.append(0, keys.slice(2, 0, 50), values.slice(2, 0, 50));
                for (int length = 50; length <= 52; length++) {
                    if (length > 50) cache.append(0, keys.slice(2, length - 1, length), values.slice(2, length - 1, length));
                    DeviceRun run = decodeAndCheck(arena, decode, cache, 0, keys.slice(2, 0, length), values.slice(2, 0, length), group, length);
                    decodedOnDevice();
                    if (length > 50) {
                        assertThat(run.firstExecution()).isFalse();
                        assertThat(run.stagedRows()).as("%s rows uploaded", type).isEqualTo(kvHeads);
                    }
                }
                Tensor q = Tensor.randomNormal(arena, 7, 1f, 1, heads, 1, d);
                Tensor out32 = Tensor.zeros(arena, 1, heads, 1, d);
                Tensor badOut = Tensor.zeros(arena, 1, heads, 1, d).to(arena, type), badLse = Tensor.zeros(arena, 1, heads, 1).to(arena, type);
                org.assertj.core.api.Assertions.assertThatThrownBy(() -> decode.forward(cache, 0, q, badOut, null))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("out has element type " + type);
                org.assertj.core.api.Assertions.assertThatThrownBy(() -> decode.forward(cache, 0, q, out32, badLse))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("lse has element type " + type);
            }
        }
    }
}
