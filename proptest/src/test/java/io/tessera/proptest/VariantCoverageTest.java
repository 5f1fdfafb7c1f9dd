package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.variant.AttentionOperator;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantRegistry;
import java.lang.reflect.Method;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
import net.jqwik.api.Property;
import org.junit.jupiter.api.Test;

/**
 * Every variant in the engine's registry must have a property class here that checks its
 * accuracy contract: a variant added without properties fails this test.
 */
class VariantCoverageTest {

    /** Variant name → the property class that checks its contract. Add a line with each new variant. */
    static final Map<String, Class<?>> CONTRACT_PROPERTIES = new TreeMap<>(Map.ofEntries(
            Map.entry("dense", FusedAttentionProperties.class),
            Map.entry("block-sparse", FusedAttentionProperties.class),
            Map.entry("linear-attention", LinearAttentionProperties.class),
            Map.entry("performer", PerformerProperties.class),
            Map.entry("linformer", LowRankProperties.class),
            Map.entry("nystrom", LowRankProperties.class),
            Map.entry("factorized", ChainedAttentionProperties.class),
            Map.entry("axial", ChainedAttentionProperties.class),
            Map.entry("explicit-sparse", ExplicitSparseProperties.class),
            Map.entry("top-k", ExplicitSparseProperties.class),
            Map.entry("causal-conv", CausalConvolutionProperties.class),
            Map.entry("tensorized", TensorizedProperties.class),
            Map.entry("lsh", ContentSparsityProperties.class),
            Map.entry("routing", ContentSparsityProperties.class)));

    @Test
    void everyRegisteredVariantHasContractProperties() {
        for (VariantInfo info : VariantRegistry.all()) {
            assertThat(CONTRACT_PROPERTIES)
                    .as("variant '%s' (%s) is registered but no property class checks its contract '%s'",
                            info.name(), info.family(), info.contract().statement())
                    .containsKey(info.name());
            Class<?> properties = CONTRACT_PROPERTIES.get(info.name());
            assertThat(Arrays.stream(properties.getDeclaredMethods()).filter(VariantCoverageTest::isProperty).count())
                    .as("%s must declare jqwik @Property methods for variant '%s'", properties.getSimpleName(), info.name())
                    .isPositive();
        }
    }

    /** Variant name → the property class that checks its gradients. A variant that claims a backward pass needs one. */
    static final Map<String, Class<?>> GRADIENT_PROPERTIES = new TreeMap<>(Map.ofEntries(
            Map.entry("dense", GradientProperties.class),
            Map.entry("block-sparse", GradientProperties.class),
            Map.entry("linear-attention", LinearAttentionGradientProperties.class),
            Map.entry("performer", PerformerGradientProperties.class),
            Map.entry("linformer", LinformerGradientProperties.class),
            Map.entry("nystrom", NystromGradientProperties.class),
            Map.entry("factorized", ChainedAttentionGradientProperties.class),
            Map.entry("axial", ChainedAttentionGradientProperties.class),
            Map.entry("lsh", ContentSparsityProperties.class),
            Map.entry("routing", ContentSparsityProperties.class)));

    @Test
    void everyVariantWithABackwardPassHasGradientProperties() {
        for (VariantInfo info : VariantRegistry.all()) {
            if (!info.gradients().available()) {
                assertThat(GRADIENT_PROPERTIES).as("variant '%s' is forward-only (%s) but has gradient properties listed", info.name(), info.gradients().note())
                        .doesNotContainKey(info.name());
                continue;
            }
            assertThat(GRADIENT_PROPERTIES)
                    .as("variant '%s' claims a backward pass (%s) but no property class checks its gradients", info.name(), info.gradients().note())
                    .containsKey(info.name());
            assertThat(Arrays.stream(GRADIENT_PROPERTIES.get(info.name()).getDeclaredMethods()).filter(VariantCoverageTest::isProperty).count())
                    .as("%s must declare jqwik @Property methods for the gradients of '%s'", GRADIENT_PROPERTIES.get(info.name()).getSimpleName(), info.name())
                    .isPositive();
        }
    }

    /** A claimed backward pass is reachable the way every variant is used: its operator is Differentiable. */
    @Test
    void everyVariantWithABackwardPassHasADifferentiableOperator() {
        for (VariantInfo info : VariantRegistry.all()) {
            boolean differentiable = info.create(1, 2, 8, 4).operator() instanceof AttentionOperator.Differentiable;
            assertThat(differentiable).as("variant '%s' says gradients available=%s (%s), its operator implements Differentiable=%s",
                    info.name(), info.gradients().available(), info.gradients().note(), differentiable).isEqualTo(info.gradients().available());
        }
    }

    @Test
    void noStaleEntries() {
        for (String name : CONTRACT_PROPERTIES.keySet()) {
            assertThat(VariantRegistry.all().stream().map(VariantInfo::name)).as("covered variant '%s' is not registered", name).contains(name);
        }
    }

    private static boolean isProperty(Method m) {
        return m.isAnnotationPresent(Property.class);
    }
}
