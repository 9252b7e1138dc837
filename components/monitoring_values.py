"""kube-prometheus-stack's Helm values: Prometheus, Alertmanager and Grafana as the Monitoring
component (monitoring.py) installs them. Pure builders: no resource is declared here.

Prometheus keeps ``retention_days`` of metrics on an encrypted gp3 volume of ``storage_gib`` and
selects every ServiceMonitor and rule in the cluster; Alertmanager routes every alert to the alarm SNS
topic through IRSA; Grafana loads the dashboards its sidecar finds in the monitoring namespace.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.monitoring_settings import MonitoringSettings

NAMESPACE = "monitoring"
# Short object names (kps-prometheus, kps-alertmanager, kps-grafana) instead of the release name twice.
FULLNAME = "kps"
STORAGE_CLASS = "gp3-encrypted"
ALERTMANAGER_SERVICE_ACCOUNT = "alertmanager"
# The node exporter needs the host's network, PID namespace and filesystem: it runs in kube-system
# (exempt from Pod Security, like every other host agent) so this namespace can enforce `restricted`.
NODE_EXPORTER_NAMESPACE = "kube-system"
# Grafana's sidecar loads every ConfigMap with this label as a dashboard.
DASHBOARD_LABEL = ("grafana_dashboard", "1")
# The chart scrapes these by default, but EKS runs the controller manager, scheduler and etcd in the
# managed control plane (no endpoint in the cluster) and kube-proxy serves metrics on the node's
# loopback only: their targets stay down and KubeControllerManagerDown, KubeSchedulerDown and
# KubeProxyDown page forever. Value names as in the chart's values.yaml (kube-prometheus-stack 79.x).
UNSCRAPABLE_ON_EKS = ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy")
# The chart's rule groups about those components (defaultRules.rules.*), off with them.
UNSCRAPABLE_RULE_GROUPS = (
    "etcd",
    "kubeControllerManager",
    "kubeSchedulerAlerting",
    "kubeSchedulerRecording",
    "kubeProxy",
)
SCRAPE_INTERVAL = "30s"


def alertmanager_config(topic_arn: pulumi.Input[str], region: str) -> dict[str, Any]:
    """Route every alert to the alarm SNS topic; the always-firing Watchdog goes nowhere."""
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "sns",
            "group_by": ["alertname", "namespace", "severity"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"receiver": "null", "matchers": ['alertname = "Watchdog"']},
                {"receiver": "null", "matchers": ['alertname = "InfoInhibitor"']},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity = "critical"'],
                "target_matchers": ['severity = "warning"'],
                "equal": ["alertname", "namespace"],
            }
        ],
        "receivers": [
            {"name": "null"},
            {
                "name": "sns",
                "sns_configs": [
                    {
                        "topic_arn": topic_arn,
                        # No keys: the AWS SDK picks up the IRSA web identity of the pod.
                        "sigv4": {"region": region},
                        "subject": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})",
                        "send_resolved": True,
                        "attributes": {"severity": "{{ .CommonLabels.severity }}"},
                    }
                ],
            },
        ],
    }


def chart_values(
    settings: MonitoringSettings,
    *,
    replicas: int,
    alertmanager_role_arn: pulumi.Input[str],
    topic_arn: pulumi.Input[str],
    region: str,
) -> dict[str, Any]:
    storage = {
        "volumeClaimTemplate": {
            "spec": {
                "storageClassName": STORAGE_CLASS,
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f"{settings.storage_gib}Gi"}},
            }
        }
    }
    # Prometheus deletes the oldest blocks before the volume fills (time retention alone cannot).
    retention_size = f"{max(1, settings.storage_gib * 85 // 100)}GB"
    return {
        "fullnameOverride": FULLNAME,
        "crds": {"enabled": True},
        "defaultRules": {"create": True, "rules": dict.fromkeys(UNSCRAPABLE_RULE_GROUPS, False)},
        **{component: {"enabled": False} for component in UNSCRAPABLE_ON_EKS},
        "prometheus-node-exporter": {"namespaceOverride": NODE_EXPORTER_NAMESPACE},
        "prometheus": {
            "prometheusSpec": {
                "replicas": replicas,
                "retention": f"{settings.retention_days}d",
                "retentionSize": retention_size,
                "storageSpec": storage,
                "scrapeInterval": SCRAPE_INTERVAL,
                # Select every ServiceMonitor, PodMonitor and rule in the cluster, not only the chart's.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "probeSelectorNilUsesHelmValues": False,
                "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
            }
        },
        "alertmanager": {
            "serviceAccount": {
                "create": True,
                "name": ALERTMANAGER_SERVICE_ACCOUNT,
                "annotations": {"eks.amazonaws.com/role-arn": alertmanager_role_arn},
            },
            "alertmanagerSpec": {
                "replicas": replicas,
                "storage": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "storageClassName": STORAGE_CLASS,
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "2Gi"}},
                        }
                    }
                },
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            },
            "config": alertmanager_config(topic_arn, region),
        },
        "grafana": {
            # Empty: the Grafana chart generates a random admin password into its Secret (and keeps
            # it across upgrades) instead of the chart's well-known default.
            "adminPassword": "",
            "defaultDashboardsTimezone": "utc",
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": DASHBOARD_LABEL[0],
                    "labelValue": DASHBOARD_LABEL[1],
                    "searchNamespace": NAMESPACE,
                }
            },
        },
    }
