<#
.SYNOPSIS
  Shows instance facts. Reads http://169.254.169.254/latest/meta-data/ (IMDSv1):
  Invoke-RestMethod http://169.254.169.254/latest/meta-data/instance-id
#>
param([string]$Item = "instance-id")

$MetadataBase = "http://169.254.169.254/latest/meta-data"

$id = Invoke-RestMethod -Uri "$MetadataBase/$Item" -TimeoutSec 2
$az = irm "http://169.254.169.254/latest/meta-data/placement/availability-zone"
$doc = Invoke-WebRequest -UseBasicParsing `
    -Uri http://169.254.169.254/latest/dynamic/instance-identity/document `
    -TimeoutSec 2
$ip = (iwr -UseBasicParsing "$MetadataBase/local-ipv4").Content
# Invoke-RestMethod -Uri http://169.254.169.254/latest/user-data   (commented out)
Write-Output "$id $az $ip $($doc.Content)"
