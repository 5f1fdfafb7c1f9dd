package io.tessera.tornado;

import io.tessera.backend.AttentionGeometry;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * An attention call's shape, offsets and strides as the int parameters every device attention
 * kernel reads (indices below); each kernel appends its own after {@link #COMMON}. Ints because
 * TornadoVM arrays index with int: every value is range-checked here.
 */
final class DeviceGeometry {
    private DeviceGeometry() {}

    static final int BATCH = 0, HEADS = 1, QUERY_HEADS_PER_KV_HEAD = 2, Q_LEN = 3, KV_LEN = 4, HEAD_DIM = 5, VALUE_DIM = 6, HAS_LSE = 7;
    static final int Q_OFF = 8, Q_B = 9, Q_H = 10, Q_ROW = 11;
    static final int K_OFF = 12, K_B = 13, K_H = 14, K_ROW = 15;
    static final int V_OFF = 16, V_B = 17, V_H = 18, V_ROW = 19;
    static final int O_OFF = 20, O_B = 21, O_H = 22, O_ROW = 23;
    static final int L_OFF = 24, L_B = 25, L_H = 26, L_ROW = 27;
    static final int COMMON = 28;

    /** The common parameters followed by {@code extra} kernel-specific slots. */
    static IntArray pack(AttentionGeometry g, boolean hasLse, int extra) {
        var s = g.shape();
        IntArray p = new IntArray(COMMON + extra);
        p.set(BATCH, s.batch());
        p.set(HEADS, s.heads());
        p.set(QUERY_HEADS_PER_KV_HEAD, s.queryHeadsPerKvHead());
        p.set(Q_LEN, s.qLen());
        p.set(KV_LEN, s.kvLen());
        p.set(HEAD_DIM, s.headDim());
        p.set(VALUE_DIM, s.valueDim());
        p.set(HAS_LSE, hasLse ? 1 : 0);
        long[] strides = {g.qOff(), g.qB(), g.qH(), g.qRow(), g.kOff(), g.kB(), g.kH(), g.kRow(),
                g.vOff(), g.vB(), g.vH(), g.vRow(), g.oOff(), g.oB(), g.oH(), g.oRow(), g.lOff(), g.lB(), g.lH(), g.lRow()};
        for (int i = 0; i < strides.length; i++) p.set(Q_OFF + i, toInt(strides[i]));
        return p;
    }

    static int toInt(long value) {
        if (value > Integer.MAX_VALUE || value < Integer.MIN_VALUE) throw new IllegalArgumentException("offset or stride " + value + " exceeds int indexing");
        return (int) value;
    }
}
