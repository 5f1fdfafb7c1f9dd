package io.tessera.variant.content;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;

/**
 * The balanced selection of routing clusters (histogram of rank-key bins, then an exact quickselect
 * within one bin) takes exactly the rows a full sort takes: the {@code per} highest scores of each
 * cluster, NaN last, ties to the lower row, ±0 equal, listed in increasing row order. Scores are
 * drawn so that ties, NaN, infinities and crowded bins (many scores in one narrow range) occur.
 */
class RoutingSelectionTest {

    @RepeatedTest(100)
    void histogramSelectionTakesWhatASortTakes(RepetitionInfo info) {
        SplittableRandom random = new SplittableRandom(info.getCurrentRepetition());
        int rows = random.nextInt(1, 700), clusters = random.nextInt(1, 9), per = random.nextInt(1, rows + 1);
        float[] scores = new float[clusters * rows];
        int style = random.nextInt(4);
        for (int i = 0; i < scores.length; i++) {
            scores[i] = switch (style) {
                case 0 -> (float) random.nextGaussian();
                case 1 -> 0.5f + 1e-6f * random.nextInt(50);          // one crowded bin, many ties
                case 2 -> random.nextInt(5) - 2f;                     // few distinct values, ±0 among them
                default -> (float) (random.nextDouble() * 2 - 1);
            };
            int special = random.nextInt(40);
            if (special == 0) scores[i] = Float.NaN;
            else if (special == 1) scores[i] = Float.NEGATIVE_INFINITY;
            else if (special == 2) scores[i] = Float.POSITIVE_INFINITY;
            else if (special == 3) scores[i] = -0f;
        }
        int[] got = RoutingAttention.members(scores, rows, clusters, per, new RoutingAttention.Selection(rows + random.nextInt(3)));
        assertThat(got).containsExactly(bySorting(scores, rows, clusters, per));
    }

    /** The reference: sort each cluster's rows by (score descending, NaN last, ±0 equal; row ascending), keep per, list ascending. */
    private static int[] bySorting(float[] scores, int rows, int clusters, int per) {
        int[] out = new int[clusters * per];
        for (int c = 0; c < clusters; c++) {
            int cluster = c;
            List<Integer> order = new ArrayList<>();
            for (int i = 0; i < rows; i++) order.add(i);
            Comparator<Integer> nanLast = Comparator.comparing(i -> Float.isNaN(scores[cluster * rows + i]));
            Comparator<Integer> byScore = nanLast.thenComparingDouble(i -> {
                float x = scores[cluster * rows + i];
                return Float.isNaN(x) ? 0 : -(double) (x == 0f ? 0f : x);
            });
            order.sort(byScore.thenComparingInt(i -> i));
            List<Integer> kept = new ArrayList<>(order.subList(0, per));
            kept.sort(null);
            for (int m = 0; m < per; m++) out[c * per + m] = kept.get(m);
        }
        return out;
    }
}
