// Validates Kubernetes objects (a JSON array on stdin) against the CRD schemas the pinned
// @kubernetes-models packages publish; prints a JSON array of "<kind>/<name>: <error>" strings.
// Objects of kinds without a published model are reported under "unchecked".
const MODELS = {
  "gateway.networking.k8s.io/v1": ["Gateway", "GatewayClass", "HTTPRoute", "ReferenceGrant"],
  "gateway.networking.k8s.io/v1beta1": ["ReferenceGrant"],
  "cert-manager.io/v1": ["Certificate", "ClusterIssuer", "Issuer"],
  "gateway.envoyproxy.io/v1alpha1": [
    "EnvoyProxy",
    "ClientTrafficPolicy",
    "BackendTrafficPolicy",
    "SecurityPolicy",
  ],
  "keda.sh/v1alpha1": ["ScaledObject", "TriggerAuthentication"],
  "monitoring.coreos.com/v1": ["ServiceMonitor", "PodMonitor", "PrometheusRule"],
};
const PACKAGE = {
  "gateway.networking.k8s.io": "gateway-api",
  "cert-manager.io": "cert-manager",
  "gateway.envoyproxy.io": "envoy-gateway",
  "keda.sh": "keda",
  "monitoring.coreos.com": "prometheus-operator",
};

async function model(apiVersion, kind) {
  if (!(MODELS[apiVersion] || []).includes(kind)) return null;
  const pkg = PACKAGE[apiVersion.split("/")[0]];
  const module = await import(`@kubernetes-models/${pkg}/${apiVersion}/${kind}`);
  return module[kind];
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const errors = [];
const unchecked = [];
for (const obj of objects) {
  const Model = await model(obj.apiVersion, obj.kind);
  const id = `${obj.kind}/${obj.metadata?.name}`;
  if (!Model) {
    unchecked.push(id);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (error) {
    errors.push(`${id}: ${error.message}`);
  }
}
process.stdout.write(JSON.stringify({ errors, unchecked }));
