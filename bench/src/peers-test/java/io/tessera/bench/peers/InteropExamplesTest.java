package io.tessera.bench.peers;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.tessera.attention.Attention;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** Runs with the peers profile: ./tessera mvn -Ppeers -pl bench -am verify -Dtest=InteropExamplesTest -Dsurefire.failIfNoSpecifiedTests=false */
class InteropExamplesTest {

    @Test
    void onnxRuntimeReadsTesseraMemoryAndWritesIntoMemoryTesseraWraps() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            long[] shape = {1, 2, 64, 16};
            Tensor q = Tensor.randomNormal(arena, 1, 1f, shape), k = Tensor.randomNormal(arena, 2, 1f, shape), v = Tensor.randomNormal(arena, 3, 1f, shape);
            Tensor fromOrt = InteropExamples.onnxRuntimeAttention(arena, q, k, v);
            assertThat(fromOrt.hasHeaderSlot()).isFalse();
            float[] ours = Attention.dense().forward(arena, q, k, v).toArray(), theirs = fromOrt.toArray();
            for (int i = 0; i < ours.length; i++) assertThat(theirs[i]).as("element %d", i).isCloseTo(ours[i], org.assertj.core.api.Assertions.within(1e-5f));
            // The buffer handed to ONNX Runtime is the tensor's memory, not a copy.
            assertThat(MemorySegment.ofBuffer(InteropExamples.directBuffer(q)).address()).isEqualTo(q.segment().address());
        }
    }

    @Test
    void djlArraysAndTesseraTensorsShareMemoryBothWays() {
        try (Arena arena = Arena.ofShared(); NDManager manager = InteropExamples.djlManager()) {
            Tensor t = Tensor.of(arena, new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
            NDArray array = InteropExamples.toNDArray(manager, t);
            t.set(42f, 1, 2);   // written through Tessera, seen by PyTorch: no copy was made
            assertThat(array.toFloatArray()).containsExactly(1, 2, 3, 4, 5, 42);

            NDArray fromDjl = manager.arange(0f, 6f).reshape(2, 3);
            Tensor view = InteropExamples.fromNDArray(fromDjl);
            assertThat(view.toArray()).containsExactly(0, 1, 2, 3, 4, 5);
            view.set(-1f, 0, 0);   // written through Tessera, seen by DJL
            assertThat(fromDjl.toFloatArray()[0]).isEqualTo(-1f);

            long[] shape = {1, 2, 48, 16};
            Tensor q = Tensor.randomNormal(arena, 4, 1f, shape), k = Tensor.randomNormal(arena, 5, 1f, shape), v = Tensor.randomNormal(arena, 6, 1f, shape);
            NDArray out = InteropExamples.attentionOnNDArrays(manager, InteropExamples.toNDArray(manager, q),
                    InteropExamples.toNDArray(manager, k), InteropExamples.toNDArray(manager, v));
            assertThat(out.toFloatArray()).containsExactly(Attention.dense().forward(arena, q, k, v).toArray());
        }
    }
}
