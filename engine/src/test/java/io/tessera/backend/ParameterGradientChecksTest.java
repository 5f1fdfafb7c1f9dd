package io.tessera.backend;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.layout.HeadLayouts;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The learnable tables' gradients of the backend SPI's backward pass are checked by name, before any work, on every CPU backend. */
class ParameterGradientChecksTest {

    @Test
    void tableGradientsAreCheckedByName() {
        int heads = 2, n = 8, d = 4;
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, heads, n, d), k = Tensor.randomNormal(arena, 2, 1f, 1, heads, n, d), v = Tensor.randomNormal(arena, 3, 1f, 1, heads, n, d);
            Tensor out = Tensor.zeros(arena, 1, heads, n, d), lse = Tensor.zeros(arena, 1, heads, n), dOut = Tensor.randomNormal(arena, 4, 1f, 1, heads, n, d);
            Tensor dq = Tensor.zeros(arena, 1, heads, n, d), dk = Tensor.zeros(arena, 1, heads, n, d), dv = Tensor.zeros(arena, 1, heads, n, d);
            Tensor table = Tensor.randomNormal(arena, 5, 0.1f, heads, 3);
            ScoreMod mod = ScoreMod.relativeBias(table, distance -> Math.min(2, Math.abs(distance)));
            HeadLayouts layouts = Pattern.causal().layouts(heads, n, n, 4, 4);
            for (String name : List.of("simd", "scalar")) {
                Backend b = Backend.named(name);
                b.attention(q, k, v, layouts, 0.5f, mod, out, lse);
                assertThatThrownBy(() -> b.attentionBackward(q, k, v, layouts, 0.5f, null, out, lse, dOut, dq, dk, dv, List.of(Tensor.zeros(arena, heads, 3))))
                        .hasMessage("dParameters must be empty without a score modifier, got 1");
                assertThatThrownBy(() -> b.attentionBackward(q, k, v, layouts, 0.5f, mod, out, lse, dOut, dq, dk, dv, List.of()))
                        .hasMessageContaining("dParameters must hold 1 tensors (one per ScoreMod.parameters() entry), got 0");
                assertThatThrownBy(() -> b.attentionBackward(q, k, v, layouts, 0.5f, mod, out, lse, dOut, dq, dk, dv, List.of(Tensor.zeros(arena, heads, 4))))
                        .hasMessage("dParameters[0] shape [2, 4] must be the table's [2, 3]");
                assertThatThrownBy(() -> b.attentionBackward(q, k, v, layouts, 0.5f, mod, out, lse, dOut, dq, dk, dv, List.of(lse.reshape(heads, n).slice(1, 0, 3))))
                        .hasMessageContaining("dParameters[0] shares memory with lse");
                assertThatCode(() -> b.attentionBackward(q, k, v, layouts, 0.5f, mod, out, lse, dOut, dq, dk, dv, List.of(Tensor.zeros(arena, heads, 3))))
                        .doesNotThrowAnyException();
            }
        }
    }
}
