#!/usr/bin/env python3
"""What `sam deploy` makes of template.yaml, checked where moto cannot see: names and policies.

1. Two stacks of template.yaml in one account and region must not share a physical name.

Renders the template through the SAM translator (what `sam deploy` sends CloudFormation), then
for every resource whose type names its resources account-wide (functions, log groups, tables,
queues, schedules, roles, APIs, alarms), resolves the name property as CloudFormation would for
two stack names and fails when
  - a name does not depend on the stack name (a second stack would clash), or
  - a name is longer than the service allows for the longest stack name the template accepts.
A resource without a name property gets one from CloudFormation (stack name + logical id +
random suffix), which never clashes.

2. No role carries a managed policy beyond logging and tracing: SAM attaches
AWSLambdaSQSQueueExecutionRole (receive and delete on every queue of the account) to functions
with SQS events, so the template declares its event source mappings itself, and each
queue-triggered function must be allowed to receive from its own queue and no other.

Usage: python3 scripts/check-template.py [template.yaml]   (needs aws-sam-cli's samtranslator)
"""
import json
import os
import re
import sys

# The translator asks for a region (for ARNs); no AWS call is made.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# Resource type -> (name property, longest name the service accepts).
NAMED = {
    "AWS::Lambda::Function": ("FunctionName", 64),
    "AWS::Logs::LogGroup": ("LogGroupName", 512),
    "AWS::DynamoDB::Table": ("TableName", 255),
    "AWS::SQS::Queue": ("QueueName", 80),
    "AWS::Scheduler::Schedule": ("Name", 64),
    "AWS::Scheduler::ScheduleGroup": ("Name", 64),
    "AWS::IAM::Role": ("RoleName", 64),
    "AWS::IAM::Policy": ("PolicyName", 128),
    "AWS::ApiGatewayV2::Api": ("Name", 128),
    "AWS::CloudWatch::Alarm": ("AlarmName", 255),
    "AWS::Events::Rule": ("Name", 64),
    "AWS::SNS::Topic": ("TopicName", 256),
}

# Names that are per resource, not per account (an IAM inline policy's name is per role).
PER_PARENT = {"AWS::IAM::Policy"}


class Unresolved(Exception):
    pass


def resolve(value, stack):
    """The string CloudFormation makes of `value` for stack name `stack` (pseudo parameters
    and Fn::Sub / Fn::Join over them; anything else is left as a marker that cannot clash)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            if arg == "AWS::StackName":
                return stack
            if arg in ("AWS::Region", "AWS::AccountId", "AWS::Partition"):
                return "{" + arg + "}"
            return "{ref:" + arg + "}"
        if fn == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]

            def sub(m):
                name = m.group(1)
                if name == "AWS::StackName":
                    return stack
                return "{" + name + "}"

            return re.sub(r"\$\{([^}]+)\}", sub, text)
        if fn == "Fn::Join":
            sep, parts = arg
            return sep.join(resolve(p, stack) for p in parts)
    raise Unresolved(json.dumps(value))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    # The stack name's longest form the template allows (Rules), else CloudFormation's 128.
    longest = 128
    for rule in (template.get("Rules") or {}).values():
        for a in rule.get("Assertions", []):
            text = json.dumps(a)
            m = re.search(r"stack name of at most (\d+)", text)
            if m:
                longest = min(longest, int(m.group(1)))
    parameters = {
        k: v.get("Default", "x") for k, v in (template.get("Parameters") or {}).items()
    }
    # What `sam deploy` uploads: the code as an S3 object.
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/code.zip"
    rendered = transform(template, parameters, None)
    problems = []
    names = 0
    for logical, resource in rendered["Resources"].items():
        kind = resource.get("Type")
        if kind not in NAMED or kind in PER_PARENT:
            continue
        prop, limit = NAMED[kind]
        value = (resource.get("Properties") or {}).get(prop)
        if value is None:
            continue
        names += 1
        try:
            a = resolve(value, "stack-a")
            b = resolve(value, "stack-b")
            long = resolve(value, "s" * longest)
        except Unresolved as e:
            problems.append(f"{logical} ({kind}): {prop} cannot be resolved: {e}")
            continue
        if a == b:
            problems.append(
                f"{logical} ({kind}): {prop} {a!r} is the same in every stack: a second stack clashes"
            )
        if len(long) > limit:
            problems.append(
                f"{logical} ({kind}): {prop} is {len(long)} characters for a {longest}-character "
                f"stack name, above the {limit} allowed"
            )
    allowed_managed = {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    }
    resources = rendered["Resources"]
    for logical, resource in resources.items():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        for arn in resource["Properties"].get("ManagedPolicyArns") or []:
            if arn not in allowed_managed:
                problems.append(f"{logical}: managed policy {arn}")
    receive = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    for logical, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        props = resource["Properties"]
        function = props["FunctionName"]["Ref"]
        queue = props["EventSourceArn"]["Fn::GetAtt"][0]
        role = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
        granted = set()
        for policy in resources[role]["Properties"].get("Policies") or []:
            for st in policy["PolicyDocument"]["Statement"]:
                if not isinstance(st, dict) or "Action" not in st:
                    continue
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                targets = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                queues = {t["Fn::GetAtt"][0] for t in targets if isinstance(t, dict) and "Fn::GetAtt" in t}
                for a in actions:
                    if a in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
                        for n in queues:
                            if n != queue:
                                problems.append(f"{function}: {a} on {n}, not only its own queue {queue}")
                    if a in receive and queue in queues:
                        granted.add(a)
        if granted != receive:
            problems.append(f"{function}: cannot {sorted(receive - granted)} on its queue {queue}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(
        f"{len(rendered['Resources'])} resources rendered, {names} named by the template: "
        "no name shared by two stacks, none too long; no managed policy beyond logging and "
        "tracing; each queue-triggered function receives from its own queue only"
    )


if __name__ == "__main__":
    main()
