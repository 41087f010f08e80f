set -e
if [ -z "${JAVA_HOME:-}" ]; then
  JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
fi
export JAVA_HOME MASTER="$SPARK_MASTER"
[ -n "$HADOOP_CONF_DIR" ] || unset HADOOP_CONF_DIR
mkdir -p "$ZEPPELIN_LOG_DIR" "$ZEPPELIN_PID_DIR" "$ZEPPELIN_NOTEBOOK_DIR"
exec "$ZEPPELIN_HOME/bin/zeppelin.sh"
