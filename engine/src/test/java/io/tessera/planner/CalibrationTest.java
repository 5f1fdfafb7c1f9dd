package io.tessera.planner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/** The planner's constants: measured quickly, overridable by system properties, bad overrides named. */
class CalibrationTest {

    @Test
    void firstUseSpendsWellUnderASecondAndGivesUsableConstants() {
        // Class loading and the backend's first call (thread pool, species) are every user's, not the calibration's.
        long firstCall = Calibration.probeFusedNanos();
        long start = System.nanoTime();
        Planner.CostModel model = Calibration.resolve(name -> null, Calibration.FIRST_USE_BUDGET);
        double seconds = (System.nanoTime() - start) / 1e9;
        // The 0.4 s budget, plus the run in flight when it ends (a cold kernel is probed with a tiny call first).
        // Bounded loosely: CI machines are shared, and a benchmark, not a test, judges speed; this catches a
        // calibration that ignores its budget.
        assertThat(seconds).as("first call took %.3f s", firstCall / 1e9).isLessThan(5.0);
        assertThat(model.fusedNsPerPairDim()).isPositive().isFinite();
        assertThat(model.csrNsPerNonZeroDim()).isPositive().isFinite();
    }

    /**
     * A timing property: on a loaded machine the timings may not settle within the bound, so it
     * runs in the exhaustive profile only ({@code -Pexhaustive} sets tessera.timingProperties), as
     * the planner's other timing properties do.
     */
    @Test
    @EnabledIfSystemProperty(named = "tessera.timingProperties", matches = "true")
    void aWarmMeasurementSettlesAndCostsTheCsrPathMorePerPair() {
        // Measuring warms the kernels; under load the JIT takes seconds, 60 s bound the test.
        Optional<Planner.CostModel> model = Calibration.measure(Duration.ofSeconds(60));
        assertThat(model).as("timings settle once the JIT has compiled the kernels").isPresent();
        // The CSR path pays a dot product and an axpy per non-zero; the fused kernel amortizes loads over tiles.
        assertThat(model.get().csrNsPerNonZeroDim()).isGreaterThan(model.get().fusedNsPerPairDim());
    }

    @Test
    void propertiesReplaceTheMeasurements() {
        Map<String, String> props = Map.of(Planner.CostModel.FUSED_PROPERTY, "0.02", Planner.CostModel.CSR_PROPERTY, " 0.5 ");
        assertThat(Calibration.resolve(props::get, Calibration.FIRST_USE_BUDGET)).isEqualTo(new Planner.CostModel(0.02, 0.5));
    }

    @Test
    void badPropertiesAreNamed() {
        assertThatThrownBy(() -> Calibration.resolve(Map.of(Planner.CostModel.FUSED_PROPERTY, "fast", Planner.CostModel.CSR_PROPERTY, "1")::get, Duration.ZERO))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("tessera.planner.fusedNsPerPairDim must be a positive number of nanoseconds, got 'fast'");
        assertThatThrownBy(() -> Calibration.resolve(Map.of(Planner.CostModel.FUSED_PROPERTY, "1", Planner.CostModel.CSR_PROPERTY, "-1")::get, Duration.ZERO))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("tessera.planner.csrNsPerNonZeroDim must be a positive number of nanoseconds, got -1");
        assertThatThrownBy(() -> new Planner.CostModel(0, 1)).hasMessageContaining("cost constants must be positive and finite");
    }
}
