"""The account bootstrap (bootstrap/), run offline under the platform's mocks: who can assume which role
(the trust policies' exact subjects, evaluated for the tokens GitHub issues), who can use which secrets
key, the state bucket, the GitHub environments' rules, and that the runbook's manual steps match them.
Then the documents are handed to moto's IAM, KMS and S3, which check their grammar as AWS would."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bootstrap import policies
from bootstrap.config import BootstrapConfigError, parse
from bootstrap.environments import environment_rules
from harness.moto_server import MotoServer
from infra.config import REPO_ROOT
from stacks.bootstrap_plan import BootstrapPlan, run
from stacks.cli import app

ACCOUNT = "123456789012"
REPO = "example-org/ai-agents-platform"
OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/platform-admin"
STACKS = ("staging", "production")


def arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/ai-agents-{name}"


@pytest.fixture(scope="module")
def plan() -> BootstrapPlan:
    return run("account")


def resources(plan: BootstrapPlan, type_: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r["props"] for r in plan.resources() if r["type"] == type_}


def trust(plan: BootstrapPlan, role: str) -> dict[str, Any]:
    return json.loads(resources(plan, "aws:iam/role:Role")[f"ai-agents-{role}"]["assumeRolePolicy"])


# --- evaluating the documents as IAM would, for the few operators they use ---------------------------


def token(sub: str, aud: str = "sts.amazonaws.com") -> dict[str, str]:
    return {
        "token.actions.githubusercontent.com:sub": sub,
        "token.actions.githubusercontent.com:aud": aud,
    }


def trust_allows(document: dict[str, Any], claims: dict[str, str]) -> bool:
    """Whether a GitHub token with these claims may assume the role (Allow statements, StringEquals only)."""
    for statement in document["Statement"]:
        assert set(statement["Condition"]) == {"StringEquals"}, "exact matches only: no StringLike"
        if statement["Effect"] != "Allow" or statement["Principal"] != {"Federated": OIDC}:
            continue
        wanted = statement["Condition"]["StringEquals"]
        if all(claims.get(k) in ([v] if isinstance(v, str) else v) for k, v in wanted.items()):
            return True
    return False


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _matches(patterns: str | list[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action, p) for p in _listed(patterns))


def key_allows(document: dict[str, Any], principal: str, action: str) -> bool:
    """A key-policy decision for a role (no grants, no IAM delegation: the policies give root nothing)."""
    allowed = False
    for s in document["Statement"]:
        who = _listed(s["Principal"]["AWS"])
        if principal not in who and "*" not in who:
            continue
        acts = _matches(s["Action"], action) if "Action" in s else not _matches(s["NotAction"], action)
        if not acts:
            continue
        condition = s.get("Condition", {}).get("ArnNotEquals", {}).get("aws:PrincipalArn")
        if condition is not None and principal in condition:
            continue
        if s["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


# --- trust: who can become which role ----------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_deploy_role_trusts_exactly_its_environment(plan: BootstrapPlan, stack: str) -> None:
    assert trust(plan, f"deploy-{stack}")["Statement"] == [
        {
            "Sid": "GithubActionsOidc",
            "Effect": "Allow",
            "Principal": {"Federated": OIDC},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                    "token.actions.githubusercontent.com:sub": f"repo:{REPO}:environment:{stack}",
                }
            },
        }
    ]


def test_every_subject_is_one_exact_string(plan: BootstrapPlan) -> None:
    subjects = {
        name.removeprefix("ai-agents-"): json.loads(props["assumeRolePolicy"])["Statement"][0]["Condition"][
            "StringEquals"
        ]["token.actions.githubusercontent.com:sub"]
        for name, props in resources(plan, "aws:iam/role:Role").items()
        if not name.startswith("ai-agents-runner-")  # the CI runners' roles trust CodeBuild, not GitHub
    }
    assert subjects == {
        "deploy-staging": f"repo:{REPO}:environment:staging",
        "deploy-production": f"repo:{REPO}:environment:production",
        "drift-staging": f"repo:{REPO}:environment:drift-staging",
        "drift-production": f"repo:{REPO}:environment:drift-production",
        "preview": f"repo:{REPO}:pull_request",
    }
    assert not any(set(s) & set("*?") for s in subjects.values())
    with pytest.raises(ValueError, match="exact string"):
        policies.github_trust_policy(OIDC, f"repo:{REPO}:*")


# Tokens GitHub issues to jobs of this repository and of others (default subject template).
TOKENS = {
    "production environment": f"repo:{REPO}:environment:production",
    "staging environment": f"repo:{REPO}:environment:staging",
    "drift-production environment": f"repo:{REPO}:environment:drift-production",
    "pull request": f"repo:{REPO}:pull_request",
    "feature branch push": f"repo:{REPO}:ref:refs/heads/feature",
    "main push without environment": f"repo:{REPO}:ref:refs/heads/main",
    "release tag without environment": f"repo:{REPO}:ref:refs/tags/v1.0.0",
    "a fork's production environment": "repo:mallory/ai-agents-platform:environment:production",
    "case-changed owner": "repo:Example-Org/ai-agents-platform:environment:production",
    "suffix attack": f"repo:{REPO}:environment:production-evil",
}


@pytest.mark.parametrize(
    ("role", "admitted"),
    [
        ("deploy-production", {"production environment"}),
        ("deploy-staging", {"staging environment"}),
        ("drift-production", {"drift-production environment"}),
        ("preview", {"pull request"}),
    ],
)
def test_which_github_tokens_each_role_admits(plan: BootstrapPlan, role: str, admitted: set[str]) -> None:
    document = trust(plan, role)
    assert {name for name, sub in TOKENS.items() if trust_allows(document, token(sub))} == admitted
    # Right subject, wrong audience: refused.
    assert not trust_allows(
        document, token(TOKENS[next(iter(admitted))], aud="https://github.com/example-org")
    )


def test_production_role_cannot_be_reached_from_a_pr_or_a_feature_branch(plan: BootstrapPlan) -> None:
    """Its subject needs the production environment, and the environment admits only main and release tags."""
    document = trust(plan, "deploy-production")
    for sub in (TOKENS["pull request"], TOKENS["feature branch push"], TOKENS["staging environment"]):
        assert not trust_allows(document, token(sub))
    environments = resources(plan, "github:index/repositoryEnvironment:RepositoryEnvironment")
    production = environments["github-production"]
    assert production["deploymentBranchPolicy"] == {"protectedBranches": False, "customBranchPolicies": True}
    assert production["reviewers"] and production["preventSelfReview"] and not production["canAdminsBypass"]
    policies_of = resources(
        plan, "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy"
    )
    refs = {(p["environment"], p.get("branchPattern"), p.get("tagPattern")) for p in policies_of.values()}
    assert refs == {
        ("staging", "main", None),
        ("drift-staging", "main", None),
        ("production", "main", None),
        ("production", None, "v*"),
        ("drift-production", "main", None),
    }
    ruleset = next(iter(resources(plan, "github:index/repositoryRuleset:RepositoryRuleset").values()))
    assert ruleset["target"] == "tag" and ruleset["conditions"]["refName"]["includes"] == ["refs/tags/v*"]
    assert ruleset["rules"]["creation"] and ruleset["rules"]["update"] and ruleset["rules"]["deletion"]


def test_every_environment_a_role_names_has_custom_branch_rules(plan: BootstrapPlan) -> None:
    named = {
        sub.rsplit(":environment:", 1)[1]
        for sub in TOKENS.values()
        if sub.startswith(f"repo:{REPO}:environment:") and not sub.endswith("-evil")
    } | {"drift-staging"}
    environments = {
        p["environment"]: p
        for p in resources(plan, "github:index/repositoryEnvironment:RepositoryEnvironment").values()
    }
    assert named == set(environments)
    assert all(e["deploymentBranchPolicy"]["customBranchPolicies"] for e in environments.values())


# --- what the roles may do ---------------------------------------------------------------------------


def inline(plan: BootstrapPlan, role: str, name: str) -> dict[str, Any]:
    return json.loads(resources(plan, "aws:iam/rolePolicy:RolePolicy")[f"ai-agents-{role}-{name}"]["policy"])


def managed(plan: BootstrapPlan, role: str) -> set[str]:
    attached = resources(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    return {p["policyArn"] for n, p in attached.items() if n.startswith(f"ai-agents-{role}-managed-")}


def test_preview_role_reads_but_never_decrypts_reads_state_or_secrets(plan: BootstrapPlan) -> None:
    assert managed(plan, "preview") == {"arn:aws:iam::aws:policy/ReadOnlyAccess"}
    guard = inline(plan, "preview", "guard")
    assert all(s["Effect"] == "Deny" for s in guard["Statement"])
    denied = {a for s in guard["Statement"] for a in _listed(s["Action"])}
    assert {"kms:Decrypt", "secretsmanager:GetSecretValue", "sts:AssumeRole", "logs:GetLogEvents"} <= denied
    state = next(s for s in guard["Statement"] if s["Sid"] == "NoState")
    bucket = f"ai-agents-pulumi-state-{ACCOUNT}"
    assert state["Action"] == "s3:*" and state["Resource"] == [
        f"arn:aws:s3:::{bucket}",
        f"arn:aws:s3:::{bucket}/*",
    ]
    for key in keys(plan).values():
        assert not key_allows(key, arn("preview"), "kms:Decrypt")


@pytest.mark.parametrize("stack", STACKS)
def test_drift_role_reads_and_writes_only_its_lock(plan: BootstrapPlan, stack: str) -> None:
    assert managed(plan, f"drift-{stack}") == {"arn:aws:iam::aws:policy/ReadOnlyAccess"}
    assert inline(plan, f"drift-{stack}", "lock")["Statement"] == [
        {
            "Sid": "LockItsStack",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Resource": f"arn:aws:s3:::ai-agents-pulumi-state-{ACCOUNT}/.pulumi/locks/*/ai-agents-platform/{stack}/*",
        }
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_deploy_role_cannot_rewrite_the_ci_roles_the_oidc_provider_or_the_bucket(
    plan: BootstrapPlan, stack: str
) -> None:
    guard = {s["Sid"]: s for s in inline(plan, f"deploy-{stack}", "guard")["Statement"]}
    assert all(s["Effect"] == "Deny" for s in guard.values())
    protected = set(guard["LeaveCiRolesAlone"]["Resource"])
    assert {arn(f"deploy-{s}") for s in STACKS} | {arn(f"drift-{s}") for s in STACKS} | {
        arn("preview"),
        ADMIN,
    } == protected
    assert "iam:UpdateAssumeRolePolicy" in guard["LeaveCiRolesAlone"]["Action"]
    assert guard["LeaveTheOidcProviderAlone"]["Resource"] == OIDC
    assert "s3:PutBucketPolicy" in guard["LeaveTheStateBucketAlone"]["Action"]


# --- the secrets keys ----------------------------------------------------------------------------------


def keys(plan: BootstrapPlan) -> dict[str, dict[str, Any]]:
    return {
        stack: json.loads(resources(plan, "aws:kms/key:Key")[f"ai-agents-{stack}-secrets"]["policy"])
        for stack in STACKS
    }


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_stacks_deploy_role_uses_its_key(plan: BootstrapPlan, stack: str) -> None:
    document = keys(plan)[stack]
    other = next(s for s in STACKS if s != stack)
    principals = {p for s in document["Statement"] for p in _listed(s["Principal"]["AWS"])} - {"*"}
    assert principals == {ADMIN, arn(f"deploy-{stack}"), arn(f"drift-{stack}")}
    assert not any(p.endswith(":root") for p in principals), "the account root gets nothing"
    for action in ("kms:Decrypt", "kms:Encrypt", "kms:DescribeKey"):
        assert key_allows(document, arn(f"deploy-{stack}"), action)
    for action in (
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:CreateGrant",
        "kms:ReEncryptFrom",
    ):
        for outsider in (arn(f"deploy-{other}"), arn(f"drift-{other}"), arn("preview"), ADMIN):
            assert not key_allows(document, outsider, action), (outsider, action)
    # Drift decrypts its stack's state and does nothing else with the key.
    assert key_allows(document, arn(f"drift-{stack}"), "kms:Decrypt")
    assert not key_allows(document, arn(f"drift-{stack}"), "kms:Encrypt")
    assert not key_allows(document, arn(f"drift-{stack}"), "kms:PutKeyPolicy")
    # Administrators administer without using it; a grant is no back door either.
    assert key_allows(document, ADMIN, "kms:PutKeyPolicy") and key_allows(
        document, ADMIN, "kms:ScheduleKeyDeletion"
    )
    deny = next(s for s in document["Statement"] if s["Sid"] == "NobodyElseUsesTheKey")
    assert deny["Principal"] == {"AWS": "*"} and "kms:CreateGrant" in deny["Action"]
    assert sorted(deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]) == sorted(
        [arn(f"deploy-{stack}"), arn(f"drift-{stack}")]
    )


def test_keys_rotate_and_outputs_name_the_secrets_provider(plan: BootstrapPlan) -> None:
    for stack in STACKS:
        key = resources(plan, "aws:kms/key:Key")[f"ai-agents-{stack}-secrets"]
        assert key["enableKeyRotation"] is True
        alias = resources(plan, "aws:kms/alias:Alias")[f"ai-agents-{stack}-secrets"]
        assert alias["name"] == f"alias/ai-agents-{stack}-pulumi-secrets"
        assert (
            plan.outputs[stack]["secretsProvider"]
            == f"awskms://alias/ai-agents-{stack}-pulumi-secrets?region=eu-west-1"
        )
    assert plan.outputs["backendUrl"] == f"s3://ai-agents-pulumi-state-{ACCOUNT}?region=eu-west-1"


# --- the state bucket ------------------------------------------------------------------------------------


def test_state_bucket_is_versioned_encrypted_private_and_per_stack_writable(plan: BootstrapPlan) -> None:
    bucket = f"ai-agents-pulumi-state-{ACCOUNT}"
    [versioning] = resources(plan, "aws:s3/bucketVersioning:BucketVersioning").values()
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    [sse] = resources(
        plan, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).values()
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    [block] = resources(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").values()
    assert all(
        block[k]
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    [bucket_policy] = resources(plan, "aws:s3/bucketPolicy:BucketPolicy").values()
    statements = {s["Sid"]: s for s in json.loads(bucket_policy["policy"])["Statement"]}
    assert statements["TlsOnly"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    production = statements["OnlyDeployProductionWritesItsState"]
    assert production["Effect"] == "Deny" and production["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == [
        arn("deploy-production")
    ]
    assert (
        f"arn:aws:s3:::{bucket}/.pulumi/stacks/ai-agents-platform/production.json*" in production["Resource"]
    )
    lock = statements["OnlyDeployAndDriftProductionLockIt"]
    assert lock["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == [
        arn("deploy-production"),
        arn("drift-production"),
    ]


# --- config ---------------------------------------------------------------------------------------------


def config_values(**settings: Any) -> dict[str, Any]:
    document = yaml.safe_load((REPO_ROOT / "bootstrap" / "Pulumi.account.yaml").read_text())
    values = document["config"]
    values["ai-agents-bootstrap:settings"].update(settings)
    return values


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"github": {"owner": "example-org", "repository": "r"}},
            "github.productionReviewers: needs at least one",
        ),
        ({"keyAdministratorArns": []}, "keyAdministratorArns"),
        ({"keyAdministratorArns": ["arn:aws:iam::123456789012:user/bob"]}, "is not an IAM role ARN"),
        ({"accountId": "12345"}, "accountId"),
        ({"stacks": ["staging", "staging"]}, "lists a stack twice"),
        ({"breakGlassRoleArns": [ADMIN]}, "keep the duties apart"),
        ({"github": {"owner": "example-org", "repository": "r", "typo": 1}}, "unknown key"),
    ],
)
def test_invalid_config_is_one_line_naming_the_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(BootstrapConfigError, match=re.escape(message)):
        parse(config_values(**settings), "Pulumi.account.yaml")


def test_without_github_settings_only_aws_is_created(tmp_path: Path) -> None:
    values = config_values()
    values["ai-agents-bootstrap:settings"]["github"]["manageSettings"] = False
    path = tmp_path / "Pulumi.manual.yaml"
    path.write_text(yaml.safe_dump({"config": values}))
    manual = run("manual", path)
    assert not [r for r in manual.resources() if r["type"].startswith(("github:", "pulumi:providers:github"))]
    assert {r["name"] for r in manual.resources() if r["type"] == "aws:iam/role:Role"} == {
        f"ai-agents-{n}"
        for n in ("deploy-staging", "deploy-production", "drift-staging", "drift-production", "preview")
    } | {f"ai-agents-runner-{stack}-role" for stack in values["ai-agents-bootstrap:settings"]["runners"]}


def test_bootstrap_plan_command_writes_the_plan(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bootstrap-plan", "account", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "plan.json").read_text())
    assert written["project"] == "ai-agents-bootstrap" and len(written["resources"]) > 30


# --- the runbook's manual path says the same as the program ------------------------------------------------

RUNBOOK = REPO_ROOT / "docs" / "runbook.md"


def test_runbook_gh_api_calls_create_exactly_the_environment_rules() -> None:
    text = RUNBOOK.read_text()
    documented = set(
        re.findall(
            r'gh api -X POST "repos/\$OWNER/\$REPO/environments/([\w-]+)/deployment-branch-policies" '
            r"-f name='([^']+)' -f type=(branch|tag)",
            text,
        )
    )
    config = parse(config_values(), "Pulumi.account.yaml")
    expected = {
        (rule.name, pattern, kind)
        for rule in environment_rules(config)
        for kind, patterns in (("branch", rule.branches), ("tag", rule.tags))
        for pattern in patterns
    }
    assert documented == expected
    created = set(re.findall(r'gh api -X PUT "repos/\$OWNER/\$REPO/environments/([\w-]+)"', text))
    assert created == {rule.name for rule in environment_rules(config)}
    for name in created:
        call = re.search(rf'environments/{name}" --input - <<.EOF.\n(.*?)\nEOF', text, flags=re.DOTALL)
        assert call, name
        body = json.loads(call[1])
        assert body["deployment_branch_policy"] == {
            "protected_branches": False,
            "custom_branch_policies": True,
        }
        assert bool(body.get("reviewers")) == (name == "production")


# --- moto: the documents as AWS's APIs take them -------------------------------------------------------------


def test_iam_kms_and_s3_accept_the_documents(plan: BootstrapPlan, moto: MotoServer) -> None:
    # The suite's moto server, not mock_aws(): leaving mock_aws() resets moto's state for the whole
    # process, the tenant secrets of the shared test stack included.
    iam, kms, s3 = (moto.client(s, region="eu-west-1") for s in ("iam", "kms", "s3"))
    iam.create_open_id_connect_provider(Url=policies.GITHUB_OIDC_URL, ClientIDList=[policies.AUDIENCE])
    roles = {props.get("name") or name: props for name, props in resources(plan, "aws:iam/role:Role").items()}
    for name, props in roles.items():
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=props["assumeRolePolicy"])
    iam.create_role(RoleName="platform-admin", AssumeRolePolicyDocument=json.dumps(policies.document([])))
    for props in resources(plan, "aws:iam/rolePolicy:RolePolicy").values():
        iam.put_role_policy(RoleName=props["role"], PolicyName=props["name"], PolicyDocument=props["policy"])
    for props in resources(plan, "aws:kms/key:Key").values():
        kms.create_key(Policy=props["policy"], Description=props["description"])
    bucket = f"ai-agents-pulumi-state-{ACCOUNT}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    [bucket_policy] = resources(plan, "aws:s3/bucketPolicy:BucketPolicy").values()
    s3.put_bucket_policy(Bucket=bucket, Policy=bucket_policy["policy"])
    # moto's state is shared by the session: other tests' roles may be there too.
    assert {*roles, "platform-admin"} <= {r["RoleName"] for r in iam.list_roles(MaxItems=1000)["Roles"]}
