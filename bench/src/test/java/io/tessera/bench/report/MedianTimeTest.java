package io.tessera.bench.report;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;
import org.openjdk.jmh.util.ListStatistics;

class MedianTimeTest {

    private static ListStatistics of(double... calls) {
        ListStatistics s = new ListStatistics();
        for (double c : calls) s.addValue(c);
        return s;
    }

    @Test
    void oneSlowCallDoesNotMoveTheMedian() {
        // Nine calls of about 260 ms and one of 900 ms (a late compilation): the mean is 324 ms, the median stays.
        MedianTime t = MedianTime.of(of(258, 259, 260, 260, 261, 262, 262, 263, 264, 900));
        assertThat(t.median()).isBetween(260.0, 262.0);
        assertThat(t.calls()).isEqualTo(10);
        assertThat(t.halfWidth()).isLessThan(5.0);
    }

    @Test
    void theIntervalNarrowsAsCallsAccumulate() {
        double[] few = new double[9], many = new double[900];
        for (int i = 0; i < few.length; i++) few[i] = 100 + i;                 // uniform over [100, 109)
        for (int i = 0; i < many.length; i++) many[i] = 100 + i / 100.0;       // the same spread, 100× the calls
        MedianTime a = MedianTime.of(of(few)), b = MedianTime.of(of(many));
        assertThat(b.halfWidth()).isLessThan(a.halfWidth() / 5);
        assertThat(a.median()).isCloseTo(104.0, within(0.6));
        assertThat(b.median()).isCloseTo(104.5, within(0.1));
    }

    @Test
    void noCallsIsAnError() {
        assertThatThrownBy(() -> MedianTime.of(new ListStatistics())).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("no timed calls");
    }
}
