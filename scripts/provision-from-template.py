#!/usr/bin/env python3
"""Creates wagate's DynamoDB table and SQS queues exactly as template.yaml declares them, on a
DynamoDB/SQS endpoint such as moto: every property of every AWS::DynamoDB::Table and
AWS::SQS::Queue resource is applied (keys, indexes, TTL, billing, encryption, point-in-time
recovery, visibility, retention, redrive policy). A property this script does not know fails
the run, so the template cannot drift from what the tests run on.

Names: the table is PREFIX; queue XQueue is PREFIX-x and XDLQ is PREFIX-x-dlq (the names
`wagate serve --backend aws --table PREFIX --queue-prefix PREFIX` opens).

    python3 scripts/provision-from-template.py --endpoint-url http://127.0.0.1:5000 --prefix e2e-1

Prints {"table": ..., "queues": {logical id: url}} as JSON.
"""

import argparse
import json
import pathlib
import sys

import boto3
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent

TAGS = {
    "!Ref": "Ref", "!GetAtt": "Fn::GetAtt", "!Sub": "Fn::Sub", "!Join": "Fn::Join", "!If": "Fn::If",
    "!Not": "Fn::Not", "!Equals": "Fn::Equals", "!Select": "Fn::Select", "!Split": "Fn::Split",
    "!And": "Fn::And", "!Or": "Fn::Or", "!FindInMap": "Fn::FindInMap", "!Base64": "Fn::Base64",
    "!GetAZs": "Fn::GetAZs", "!ImportValue": "Fn::ImportValue", "!Condition": "Condition",
}


class TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsic functions."""


def _intrinsic(loader, tag_suffix, node):
    tag = "!" + tag_suffix
    name = TAGS.get(tag)
    if name is None:
        raise yaml.constructor.ConstructorError(None, None, f"unknown tag {tag}", node.start_mark)
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_template(path):
    return yaml.load(path.read_text(), Loader=TemplateLoader)


class Resolver:
    def __init__(self, template):
        self.parameters = {
            name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()
        }
        self.arns = {}

    def value(self, v, where):
        if isinstance(v, dict) and len(v) == 1 and next(iter(v)) in set(TAGS.values()):
            (fn, arg), = v.items()
            if fn == "Ref" and arg in self.parameters:
                if self.parameters[arg] is None:
                    raise SystemExit(f"{where}: parameter {arg} has no default")
                return self.parameters[arg]
            if fn == "Fn::GetAtt" and arg[1] == "Arn" and arg[0] in self.arns:
                return self.arns[arg[0]]
            raise LookupError(f"{where}: cannot resolve {v} (yet)")
        if isinstance(v, dict):
            return {k: self.value(x, f"{where}.{k}") for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        return v


def queue_name(prefix, logical_id):
    if logical_id.endswith("DLQ"):
        return f"{prefix}-{logical_id[:-3].lower()}-dlq"
    if logical_id.endswith("Queue"):
        return f"{prefix}-{logical_id[:-5].lower()}"
    raise SystemExit(f"{logical_id}: queue logical ids end with Queue or DLQ")


QUEUE_ATTRIBUTES = {
    "VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds", "SqsManagedSseEnabled", "FifoQueue",
    "ContentBasedDeduplication", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
}


def attribute_text(v):
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def create_queue(sqs, resolver, prefix, logical_id, props):
    props = resolver.value(props, logical_id)
    attributes = {}
    for key, v in props.items():
        if key in QUEUE_ATTRIBUTES:
            attributes[key] = attribute_text(v)
        elif key in ("RedrivePolicy", "RedriveAllowPolicy"):
            attributes[key] = json.dumps(v if isinstance(v, dict) else json.loads(v))
        else:
            raise SystemExit(f"{logical_id}: property {key} is not handled by this script")
    name = queue_name(prefix, logical_id)
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    resolver.arns[logical_id] = arn
    return url


def create_table(dynamodb, resolver, name, logical_id, props):
    props = resolver.value(props, logical_id)
    request = {"TableName": name}
    after = []
    for key, v in props.items():
        if key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
                   "LocalSecondaryIndexes", "BillingMode", "ProvisionedThroughput"):
            request[key] = v
        elif key == "StreamSpecification":
            request[key] = {"StreamEnabled": True, **v}
        elif key == "SSESpecification":
            request[key] = {"Enabled": v.get("SSEEnabled", False),
                            **({"SSEType": v["SSEType"]} if "SSEType" in v else {})}
        elif key == "TimeToLiveSpecification":
            after.append(lambda v=v: dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={
                    "AttributeName": v["AttributeName"], "Enabled": v["Enabled"]}))
        elif key == "PointInTimeRecoverySpecification":
            after.append(lambda v=v: dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={
                    "PointInTimeRecoveryEnabled": v["PointInTimeRecoveryEnabled"]}))
        else:
            raise SystemExit(f"{logical_id}: property {key} is not handled by this script")
    dynamodb.create_table(**request)
    for step in after:
        step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--template", default=str(ROOT / "template.yaml"))
    args = parser.parse_args()
    template = load_template(pathlib.Path(args.template))
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=args.region)
    dynamodb = session.client("dynamodb", endpoint_url=args.endpoint_url)
    sqs = session.client("sqs", endpoint_url=args.endpoint_url)
    resolver = Resolver(template)
    resources = template["Resources"]
    tables = [k for k, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"]
    if len(tables) != 1:
        raise SystemExit(f"expected one table, found {tables}")
    create_table(dynamodb, resolver, args.prefix, tables[0], resources[tables[0]].get("Properties", {}))
    # Queues in dependency order: a queue whose redrive target is not created yet waits.
    pending = {k: r.get("Properties", {}) for k, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    urls = {}
    while pending:
        progressed = False
        for logical_id, props in list(pending.items()):
            try:
                urls[logical_id] = create_queue(sqs, resolver, args.prefix, logical_id, props)
            except LookupError:
                continue
            del pending[logical_id]
            progressed = True
        if not progressed:
            raise SystemExit(f"cannot resolve the queues {sorted(pending)}")
    json.dump({"table": args.prefix, "queues": urls}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
