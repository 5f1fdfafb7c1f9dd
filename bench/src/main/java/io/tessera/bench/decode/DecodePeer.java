package io.tessera.bench.decode;

import java.nio.FloatBuffer;
import java.util.ServiceLoader;

/**
 * Another library's decode step, measured by {@link DecodeBenchmark} beside Tessera's on the same
 * inputs and checked against the same float64 oracle. Implementations live in the {@code peers}
 * Maven profile and are found with {@link ServiceLoader}.
 */
public interface DecodePeer extends AutoCloseable {

    /** Display name with version. */
    String name();

    /** Short stable id, the benchmark's {@code backend} parameter. */
    String id();

    /** Null when the peer can run here, else why not. */
    String unavailableReason();

    /**
     * One new query per sequence against its keys and values: q {@code [batch, heads, 1, headDim]},
     * k and v {@code [batch, kvHeads, keys, headDim]} row-major (query head h reads key/value head
     * h / (heads / kvHeads)); every query attends all {@code keys} keys given (a sliding window
     * passes only its window's keys, as a decoder with a rolling window cache holds them).
     */
    void prepare(int batch, int heads, int kvHeads, int keys, int headDim, FloatBuffer q, FloatBuffer k, FloatBuffer v, int threads) throws Exception;

    /** One decode step on the prepared inputs. */
    void step() throws Exception;

    /** Output {@code [batch, heads, 1, headDim]} of the last step. */
    float[] output() throws Exception;

    @Override
    void close() throws Exception;

    /** Whether a peer with id {@code id} is on the class path and can run here. */
    static boolean available(String id) {
        for (DecodePeer p : ServiceLoader.load(DecodePeer.class)) if (p.id().equals(id)) return p.unavailableReason() == null;
        return false;
    }

    /** The peer with id {@code id} on the class path. */
    static DecodePeer find(String id) {
        for (DecodePeer p : ServiceLoader.load(DecodePeer.class)) if (p.id().equals(id)) return p;
        throw new IllegalArgumentException("no decode peer '" + id + "' on the class path (build bench with -Ppeers)");
    }
}
