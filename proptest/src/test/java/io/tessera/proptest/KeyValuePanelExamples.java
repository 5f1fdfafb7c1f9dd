package io.tessera.proptest;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Example;

/**
 * The SIMD forward keeps each thread's widened keys and values of one (call, batch, KV head) in
 * panels and reuses them across query blocks and query heads. These examples check that a panel is
 * never reused by a later call (same shape, other keys and values, other storage) or another batch
 * or KV head, on one thread and on two, and that heads too long for the panels (the per-tile copy
 * fallback) give the same floats: the scalar twin, which has no panels, is the reference, bit for bit.
 */
class KeyValuePanelExamples {

    @Example
    void panelsAreReusedOnlyWithinTheirCallBatchAndHead() {
        // One (batch, KV head): consecutive calls' work items on a thread have the same (b, hk).
        panelsAreReusedOnlyWithinTheirCallBatchAndHead(1, 2, 1);
        panelsAreReusedOnlyWithinTheirCallBatchAndHead(2, 4, 2);   // and across batches and KV heads
    }

    private static void panelsAreReusedOnlyWithinTheirCallBatchAndHead(int batch, int heads, int kvHeads) {
        try (Arena arena = Arena.ofShared()) {
            int n = 70, d = 8;
            Tensor q = Tensor.randomNormal(arena, 1, 1f, batch, heads, n, d);
            Tensor[] keys = {Tensor.randomNormal(arena, 2, 1f, batch, kvHeads, n, d), Tensor.randomNormal(arena, 3, 2f, batch, kvHeads, n, d)};
            Tensor[] values = {Tensor.randomNormal(arena, 4, 1f, batch, kvHeads, n, d), Tensor.randomNormal(arena, 5, 1f, batch, kvHeads, n, d)};
            Attention dense = Attention.dense().withBlockSizes(32, 32);
            for (int threads : new int[] {1, 2}) {
                Attention simd = dense.on(Backend.named("simd").withThreads(threads)), scalar = dense.on(Backend.named("scalar"));
                // Same shape every call: only the call's identity tells the panels apart.
                for (int round = 0; round < 2; round++) {
                    for (int which = 0; which < 2; which++) {
                        for (ElementType type : new ElementType[] {ElementType.F32, ElementType.BF16}) {
                            Tensor k = keys[which].to(arena, type), v = values[which].to(arena, type);
                            assertSameFloats("threads " + threads + ", round " + round + ", inputs " + which + ", " + type,
                                    run(arena, scalar, q, k, v), run(arena, simd, q, k, v));
                        }
                    }
                }
            }
        }
    }

    @Example
    void headsTooLongForThePanelsCopyEachTile() {
        try (Arena arena = Arena.ofShared()) {
            // (kvLen + 6) · (d + dv) · 4 bytes = 16.9 MB > the panels' 16 MiB; one query block, so one thread.
            int n = 2050, d = 8, dv = 2048, qLen = 3;
            Tensor q = Tensor.randomNormal(arena, 6, 1f, 1, 1, qLen, d);
            Tensor k = Tensor.randomNormal(arena, 7, 1f, 1, 1, n, d), v = Tensor.randomNormal(arena, 8, 1f, 1, 1, n, dv);
            Attention dense = Attention.dense();
            assertSameFloats("long head", run(arena, dense.on(Backend.named("scalar")), q, k, v), run(arena, dense.on(Backend.named("simd").withThreads(1)), q, k, v));
        }
    }

    private static float[] run(Arena arena, Attention attention, Tensor q, Tensor k, Tensor v) {
        long[] shape = q.shape().clone();
        shape[shape.length - 1] = v.shape()[v.shape().length - 1];
        Tensor out = Tensor.zeros(arena, shape);
        attention.forward(q, k, v, out);
        return out.toArray();
    }

    private static void assertSameFloats(String what, float[] expected, float[] actual) {
        for (int i = 0; i < expected.length; i++) {
            if (!(expected[i] == actual[i] || (Float.isNaN(expected[i]) && Float.isNaN(actual[i])))) {
                throw new AssertionError(what + ", output[" + i + "]: scalar " + expected[i] + " vs simd " + actual[i]);
            }
        }
    }
}
