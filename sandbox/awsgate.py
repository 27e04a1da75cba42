"""AWS behaviours moto 5.2.5 lacks: the one place the sandbox adds them, in moto's server and in a proxy in front of it.

**moto's server, extended** (`python -m sandbox.awsgate -H HOST -p PORT`, which
sandbox.motoserver runs instead of `python -m moto.server`):

- **GetConsoleOutput answers each instance's own console text.** moto answers every
  instance with one fixed sample (a 2006 Xen kernel log). Here the answer is the file
  CONSOLE_DIR/INSTANCE_ID, which the sandbox writes when the instance boots (what cloud-init
  prints, with the BEGIN/END SSH HOST KEY KEYS block of that host's sshd: sandbox/console.py),
  and no output at all before that, as AWS answers for an instance that has not booted.
- **A terminated instance's private address is free again.** moto keeps it taken for good
  (a later RunInstances with that PrivateIpAddress fails), where EC2 hands it to the next
  instance: the reuse that makes host keys remembered by address wrong.

**The proxy.** Point an inventory's aws.endpoint_url at `AwsGate(...).url`. Everything is forwarded to
moto (sandbox.motoproxy) except what is listed here; a behaviour added later belongs in
this list and in `AwsGate._answer`:

- **AssumeRole is checked against the role's trust policy.** moto lets any caller assume
  any role, even one that does not exist. The gate reads the role from moto's IAM in the
  role's account and answers AccessDenied, as AWS does, unless the role exists and the
  request's ExternalId equals the policy's `sts:ExternalId` condition (when it has one).
  Every AssumeRole seen is recorded in `.assumed` as (role ARN, session name).
- **A stack can be shown in a given status** (`stack_status`: name -> status, e.g.
  UPDATE_IN_PROGRESS). moto's CloudFormation applies a change synchronously, so a stack
  is never seen changing; DescribeStacks answers for those stacks carry the status given.
- **Instances can be placed in several availability zones** (`zones`: instance id -> zone).
  moto places an instance in its subnet's zone, and the sandbox's hosts share one subnet
  (one bridge, fixed addresses), so they all read the same zone; DescribeInstances answers
  carry the zone given for those instances (`Placement.AvailabilityZone`), as EC2 reports
  the zone of each instance of a group spread over several subnets.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs

import boto3

from sandbox import topology as topo
from sandbox.awsprofile import REGION
from sandbox.motoproxy import MotoProxy

_DENIED = ("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{}</Message></Error>"
           "<RequestId>gate</RequestId></ErrorResponse>")


def trusted(policy: dict, external_id: str | None) -> bool:
    """Whether a trust policy lets a caller presenting `external_id` assume the role (sts:ExternalId only)."""
    for st in policy.get("Statement", []):
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if st.get("Effect") != "Allow" or "sts:AssumeRole" not in actions:
            continue
        wanted = st.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")
        if wanted is None or wanted == external_id:
            return True
    return False


class AwsGate(MotoProxy):
    """A proxy to moto enforcing AssumeRole trust and showing chosen stack statuses (see the module docstring)."""

    def __init__(self, upstream: str = topo.MOTO_ENDPOINT, stack_status: dict[str, str] | None = None,
                 zones: dict[str, str] | None = None):
        super().__init__(upstream)
        self.stack_status = dict(stack_status or {})
        self.zones = dict(zones or {})
        self.assumed: list[tuple[str, str]] = []

    def _answer(self, method, path, headers, body):
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        action = form.get("Action")
        if action == "AssumeRole":
            with self._lock:
                self.assumed.append((form.get("RoleArn", ""), form.get("RoleSessionName", "")))
            why = self._refusal(form.get("RoleArn", ""), form.get("ExternalId"))
            if why:
                return 403, [("Content-Type", "text/xml"), ("x-amzn-RequestId", "gate")], _DENIED.format(why).encode()
        status, out, data = super()._answer(method, path, headers, body)
        if action == "DescribeStacks" and form.get("StackName") in self.stack_status and status == 200:
            data = re.sub(rb"<StackStatus>[A-Z_]+</StackStatus>",
                          f"<StackStatus>{self.stack_status[form['StackName']]}</StackStatus>".encode(), data)
        if action == "DescribeInstances" and self.zones and status == 200:
            data = placed(data, self.zones)
        return status, out, data

    def _refusal(self, role_arn: str, external_id: str | None) -> str | None:
        """Why AWS would refuse this AssumeRole, or None; reads the role from moto's IAM in its account."""
        match = re.match(r"^arn:aws:iam::([0-9]{12}):role/(?:.*/)?([^/]+)$", role_arn)
        if not match:
            return f"not a role ARN: {role_arn}"
        iam = account_client("iam", match.group(1), self.upstream)
        try:
            policy = iam.get_role(RoleName=match.group(2))["Role"]["AssumeRolePolicyDocument"]
        except iam.exceptions.NoSuchEntityException:
            return f"User is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        policy = json.loads(policy) if isinstance(policy, str) else policy
        if not trusted(policy, external_id):
            return f"User is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        return None


def placed(xml: bytes, zones: dict[str, str]) -> bytes:
    """A DescribeInstances answer with each instance in `zones` placed in the zone given."""
    root = ET.fromstring(xml)
    ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    ET.register_namespace("", ns.strip("{}"))
    for item in root.iter(f"{ns}item"):
        iid, zone = item.find(f"{ns}instanceId"), item.find(f"{ns}placement/{ns}availabilityZone")
        if iid is not None and zone is not None and iid.text in zones:
            zone.text = zones[iid.text]
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def account_client(service: str, account_id: str, endpoint: str, region: str = REGION):
    """A boto3 client acting in moto's account `account_id` (moto maps assumed-role keys to the role's account)."""
    base = boto3.client("sts", endpoint_url=endpoint, region_name=region,
                        aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    creds = base.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/sandbox-admin", RoleSessionName="sandbox")["Credentials"]
    return boto3.client(service, endpoint_url=endpoint, region_name=region, aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])


# --- moto's server, extended -------------------------------------------------------------

CONSOLE_DIR = topo.CONSOLE_DIR


def console_text(instance_id: str) -> str:
    """What the instance has printed to its console so far ('' before it booted)."""
    path = CONSOLE_DIR / instance_id
    return path.read_text() if re.fullmatch(r"i-[0-9a-f]+", instance_id) and path.is_file() else ""


def _extend_moto() -> None:
    """Make moto's EC2 GetConsoleOutput answer console_text() (see the module docstring)."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.ec2.responses.general import General
    from moto.ec2.utils import Base64EncodedString

    def get_console_output(self) -> ActionResult:
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))  # InvalidInstanceID.NotFound as AWS
        result = {"InstanceId": instance.id, "Timestamp": utcnow()}
        if text := console_text(instance.id):
            result["Output"] = Base64EncodedString.from_raw_string(text)
        return ActionResult(result)

    General.get_console_output = get_console_output

    from moto.ec2.models.instances import Instance

    terminate = Instance.terminate

    def terminate_and_free_address(self):
        subnet = self.ec2_backend.get_subnet(self.subnet_id) if self.subnet_id else None
        state = terminate(self)
        for ip in list(getattr(self, "_private_ips", ())) if subnet is not None else ():
            subnet.del_subnet_ip(ip)
        return state

    Instance.terminate = terminate_and_free_address


if __name__ == "__main__":
    from moto.server import main

    _extend_moto()
    main(sys.argv[1:])
