#!/bin/bash
# The Spark image's entrypoint. Spark on Kubernetes starts each executor pod with the single argument
# `executor` and describes the executor in SPARK_* environment variables (driver URL, id, cores, memory,
# and the JVM options as SPARK_JAVA_OPT_0, _1, ...): start an executor backend from them. Anything else
# (the driver pods run spark-submit as their command) runs as given.
set -euo pipefail

if [ "${1:-}" != executor ]; then
  exec "$@"
fi

java_opts=()
while IFS= read -r opt; do
  [ -n "$opt" ] && java_opts+=("$opt")
done < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | cut -d= -f2-)

exec java "${java_opts[@]}" \
  -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
  -cp "${SPARK_CLASSPATH:+${SPARK_CLASSPATH}:}${SPARK_HOME}/jars/*" \
  org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
  --driver-url "${SPARK_DRIVER_URL}" \
  --executor-id "${SPARK_EXECUTOR_ID}" \
  --cores "${SPARK_EXECUTOR_CORES}" \
  --app-id "${SPARK_APPLICATION_ID}" \
  --hostname "${SPARK_EXECUTOR_POD_IP}" \
  --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID}" \
  --podName "${SPARK_EXECUTOR_POD_NAME}"
