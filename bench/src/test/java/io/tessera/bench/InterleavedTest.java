package io.tessera.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

/** The harness that times engines in turns: in a real child JVM, on states whose call time is known. */
class InterleavedTest {

    /** A benchmark state whose call sleeps {@code ms}; its setup fails when asked to. */
    public static class Sleeper {
        @Param({"4"})
        public int ms;
        @Param({"false"})
        public boolean failInSetup;
        private boolean ready;

        @Setup(Level.Trial)
        public void setup() {
            if (failInSetup) throw new IllegalStateException("the sleeper's oracle check failed");
            ready = true;
        }

        public Object call() throws InterruptedException {
            if (!ready) throw new IllegalStateException("setup did not run");
            Thread.sleep(ms);
            return this;
        }
    }

    /** A state with an iteration-level fixture, which the harness does not run. */
    public static class PerIteration {
        @Setup(Level.Iteration)
        public void setup() {}

        public Object call() { return this; }
    }

    private static final Interleaved.Budget SMALL = new Interleaved.Budget(0.05, 2, 0.1, 9);

    @Test
    void everyEngineIsTimedInEveryRoundAndThePairedRatioIsToTheFirst() throws Exception {
        List<Interleaved.Outcome> outcomes = Interleaved.run(List.of(
                new Interleaved.Contender("fast", Sleeper.class, "call", Map.of()),   // the @Param default: 4 ms
                new Interleaved.Contender("slow", Sleeper.class, "call", Map.of("ms", "16"))), SMALL, List.of());
        assertThat(outcomes).extracting(o -> o.contender().label()).containsExactly("fast", "slow");
        Interleaved.Outcome fast = outcomes.get(0), slow = outcomes.get(1);
        assertThat(fast.time().calls()).isEqualTo(slow.time().calls()).isGreaterThanOrEqualTo(9);
        assertThat(fast.speedup()).isNull();
        assertThat(fast.time().median()).isBetween(4.0, 12.0);   // a sleep never ends early; a loaded machine adds to it
        assertThat(slow.time().median()).isBetween(16.0, 30.0);
        assertThat(slow.speedup().median()).isBetween(16.0 / 12, 30.0 / 4);
    }

    @Test
    void slowEnginesWarmUpInFewerCallsAndRoundsStopAtThreeTimesTheMeasureTime() {
        var budget = new Interleaved.Budget(1.5, 3, 6, 9);
        assertThat(budget.warmsUp(0, 0)).isTrue();
        assertThat(budget.warmsUp(2, 1.6)).isTrue();       // fast calls: 3 of them at least
        assertThat(budget.warmsUp(3, 1.6)).isFalse();
        assertThat(budget.warmsUp(1, 1.0)).isTrue();       // under the warm-up time: always on
        assertThat(budget.warmsUp(1, 3.2)).isFalse();      // one 3.2 s call is twice the warm-up time
        assertThat(budget.measuresMore(8, 7)).isTrue();    // 9 rounds at least ...
        assertThat(budget.measuresMore(9, 5.9)).isTrue();  // ... and 6 s of calls
        assertThat(budget.measuresMore(9, 6)).isFalse();
        assertThat(budget.measuresMore(2, 19)).isTrue();   // 3-s rounds: 3 rounds at least ...
        assertThat(budget.measuresMore(3, 17.9)).isTrue();
        assertThat(budget.measuresMore(3, 18)).isFalse();  // ... then no more than 18 s
    }

    @Test
    void aFailingSetupFailsTheMatchWithItsMessage() {
        assertThatThrownBy(() -> Interleaved.run(List.of(
                new Interleaved.Contender("ok", Sleeper.class, "call", Map.of()),
                new Interleaved.Contender("broken", Sleeper.class, "call", Map.of("failInSetup", "true"))), SMALL, List.of()))
                .hasMessageContaining("the sleeper's oracle check failed");
        assertThatThrownBy(() -> Interleaved.run(List.of(new Interleaved.Contender("x", PerIteration.class, "call", Map.of())), SMALL, List.of()))
                .hasMessageContaining("Iteration-level fixture");
    }

    @Test
    void badBudgetsAndLabelsAreNamed() {
        assertThatThrownBy(() -> new Interleaved.Budget(1, 0, 1, 1)).hasMessageContaining("at least one warm-up call");
        assertThatThrownBy(() -> new Interleaved.Budget(Double.NaN, 1, 1, 1)).hasMessageContaining("NaN");
        assertThatThrownBy(() -> new Interleaved.Contender("a\tb", Sleeper.class, "call", Map.of())).hasMessageContaining("label must be one line");
        assertThatThrownBy(() -> Interleaved.run(List.of(), SMALL, List.of())).hasMessageContaining("contenders must not be empty");
    }
}
