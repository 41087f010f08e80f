set -e
if [ -z "${JAVA_HOME:-}" ]; then
  JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
fi
export JAVA_HOME
case "$1" in
  namenode)
    [ -d "$HADOOP_NAMENODE_DIR/current" ] || "$HADOOP_HOME/bin/hdfs" namenode -format -nonInteractive -force
    exec "$HADOOP_HOME/bin/hdfs" namenode ;;
  datanode) exec "$HADOOP_HOME/bin/hdfs" datanode ;;
  resourcemanager) exec "$HADOOP_HOME/bin/yarn" resourcemanager ;;
  nodemanager) exec "$HADOOP_HOME/bin/yarn" nodemanager ;;
  *) echo "unknown daemon $1" >&2; exit 2 ;;
esac
