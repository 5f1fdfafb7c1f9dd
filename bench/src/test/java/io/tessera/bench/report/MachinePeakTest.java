package io.tessera.bench.report;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** The run's peak is the best of its readings, each figure on its own. */
class MachinePeakTest {

    @Test
    void bestTakesEachFigureFromTheReadingThatReachedIt() {
        MachinePeak disturbed = new MachinePeak(2, 282.7, 51.9, 512), quiet = new MachinePeak(2, 409.2, 18.1, 512);
        MachinePeak best = disturbed.best(quiet);
        assertThat(best.fmaGflops()).isEqualTo(409.2);
        assertThat(best.triadGBytesPerS()).isEqualTo(51.9);
        assertThat(quiet.best(disturbed)).isEqualTo(best);
    }

    @Test
    void readingsOfOtherThreadCountsDoNotCombine() {
        assertThatThrownBy(() -> new MachinePeak(2, 400, 50, 512).best(new MachinePeak(1, 200, 28, 512)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("differ in threads or width");
    }

    @Test
    void aMeasurementIsPositive() throws Exception {
        MachinePeak small = MachinePeak.measure(1, 200_000, 1 << 16, 1);
        assertThat(small.fmaGflops()).isPositive();
        assertThat(small.triadGBytesPerS()).isPositive();
        assertThat(small.threads()).isEqualTo(1);
    }
}
