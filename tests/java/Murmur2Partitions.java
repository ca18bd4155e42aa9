/*
 * Murmur2Partitions - prints how Kafka's Java producer partitions keys, for
 * tests/integration/kafka_murmur2.sh.
 *
 *   java -cp <kafka-clients and deps> Murmur2Partitions KEYS_FILE N1,N2,...
 *
 * For each line of KEYS_FILE (UTF-8, one key per line) prints
 *   <murmur2 hash as a signed int> TAB <partition for N1> TAB <partition for N2> ...
 * using the producer's own BuiltInPartitioner.partitionForKey (the default
 * partitioner for keyed records), after checking that it agrees with
 * Utils.toPositive(Utils.murmur2(key)) % n.
 */
import java.io.BufferedWriter;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.List;

import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.utils.Utils;

public final class Murmur2Partitions {
    private Murmur2Partitions() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Murmur2Partitions KEYS_FILE N1,N2,...");
            System.exit(2);
        }
        List<String> keys = Files.readAllLines(Paths.get(args[0]), StandardCharsets.UTF_8);
        String[] parts = args[1].split(",");
        int[] counts = new int[parts.length];
        for (int i = 0; i < parts.length; i++) counts[i] = Integer.parseInt(parts[i].trim());

        BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
        for (String key : keys) {
            byte[] bytes = key.getBytes(StandardCharsets.UTF_8);
            StringBuilder line = new StringBuilder();
            line.append(Utils.murmur2(bytes));
            for (int n : counts) {
                int p = BuiltInPartitioner.partitionForKey(bytes, n);
                int q = Utils.toPositive(Utils.murmur2(bytes)) % n;
                if (p != q) throw new IllegalStateException("partitioner disagrees with murmur2 for " + key);
                line.append('\t').append(p);
            }
            out.write(line.toString());
            out.write('\n');
        }
        out.flush();
    }
}
