#!/bin/bash
# /docker-entrypoint.sh of the lab's Flink image (flink-gitops.local/flink:2.3). It takes the
# verbs of the official Flink image's entrypoint, which the agent's rendered pods use:
#   jobmanager [args]        session JobManager      (bin/jobmanager.sh start-foreground)
#   standalone-job [args]    application JobManager  (bin/standalone-job.sh start-foreground)
#   taskmanager [args]       TaskManager             (bin/taskmanager.sh start-foreground)
#   anything else            run as given
# Configuration comes from /opt/flink/conf (the cluster's ConfigMap is mounted there);
# arguments such as `-D key=value` are passed through.
set -e
export FLINK_HOME=${FLINK_HOME:-/opt/flink}
export PATH="$FLINK_HOME/bin:$PATH"
verb=${1:-help}
[ $# -gt 0 ] && shift
case "$verb" in
    jobmanager) exec "$FLINK_HOME/bin/jobmanager.sh" start-foreground "$@" ;;
    standalone-job) exec "$FLINK_HOME/bin/standalone-job.sh" start-foreground "$@" ;;
    taskmanager) exec "$FLINK_HOME/bin/taskmanager.sh" start-foreground "$@" ;;
    help | --help | -h) sed -n '2,9p' "$0" ;;
    *) exec "$verb" "$@" ;;
esac
