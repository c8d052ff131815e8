# Legacy boto 2 code: boto.utils always uses IMDSv1.
import boto.utils
import boto3
from boto.utils import get_instance_metadata

meta = boto.utils.get_instance_metadata(timeout=1, num_retries=2)
identity = boto.utils.get_instance_identity()
region = identity["document"]["region"]

# boto3/botocore use IMDSv2 on their own: not findings.
ec2 = boto3.client("ec2", region_name=region)
session = boto3.session.Session()
creds = session.get_credentials()

def local_ip():
    return get_instance_metadata()["local-ipv4"]
