/*
 * bus_kafka.h - what the Kafka backend shares beyond the bus interface.
 */
#ifndef HERALD_BUS_KAFKA_H
#define HERALD_BUS_KAFKA_H

/* herald's librdkafka producer settings as NULL-terminated key/value pairs
 * (static): the bus applies them before the kafka.* settings. The
 * benchmark's raw librdkafka baseline uses the same ones, so the two
 * measure the same producer. */
const char *const *bus_kafka_producer_defaults(void);

#endif
