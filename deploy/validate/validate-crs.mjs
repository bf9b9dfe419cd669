// Validates custom resources against their CRD OpenAPI schemas, as compiled into the
// @kubernetes-models packages (Strimzi's kafka.strimzi.io, Prometheus Operator's
// monitoring.coreos.com). Reads a JSON array of resources on stdin; writes a JSON array of
// {apiVersion, kind, name, errors} (errors null when valid), one per resource, in order.
// A kind without a model here is reported with errors ["no schema"], never passed silently.
import { Kafka } from "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/Kafka";
import { KafkaNodePool } from "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/KafkaNodePool";
import { KafkaTopic } from "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/KafkaTopic";
import { KafkaUser } from "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/KafkaUser";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const MODELS = {
  "kafka.strimzi.io/v1beta2 Kafka": Kafka,
  "kafka.strimzi.io/v1beta2 KafkaNodePool": KafkaNodePool,
  "kafka.strimzi.io/v1beta2 KafkaTopic": KafkaTopic,
  "kafka.strimzi.io/v1beta2 KafkaUser": KafkaUser,
  "monitoring.coreos.com/v1 ServiceMonitor": ServiceMonitor,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((resource) => {
  const { apiVersion, kind } = resource;
  const result = { apiVersion, kind, name: resource.metadata?.name, errors: null };
  const Model = MODELS[`${apiVersion} ${kind}`];
  if (!Model) return { ...result, errors: ["no schema"] };
  try {
    new Model(resource).validate();
  } catch (error) {
    result.errors = (error.errors ?? [error]).map((e) => `${e.instancePath ?? ""} ${e.message}`.trim());
  }
  return result;
});
process.stdout.write(JSON.stringify(results));
