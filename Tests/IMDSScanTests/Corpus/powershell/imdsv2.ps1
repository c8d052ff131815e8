# IMDSv2 from PowerShell.
$imds = "http://169.254.169.254"
$token = Invoke-RestMethod -Method PUT -Uri "$imds/latest/api/token" `
    -Headers @{"X-aws-ec2-metadata-token-ttl-seconds" = "21600"}
$headers = @{"X-aws-ec2-metadata-token" = $token}

$id = Invoke-RestMethod -Headers $headers -Uri "$imds/latest/meta-data/instance-id"
$params = @{
    Uri     = "$imds/latest/meta-data/instance-type"
    Headers = @{ 'X-aws-ec2-metadata-token' = $token }
}
$type = Invoke-RestMethod @params

function Get-Region {
    # Forgot the headers:
    (Invoke-RestMethod -Uri "$imds/latest/dynamic/instance-identity/document").region
}

$wc = New-Object System.Net.WebClient
$userData = $wc.DownloadString("$imds/latest/user-data")
$wc2 = New-Object System.Net.WebClient
$wc2.Headers.Add("X-aws-ec2-metadata-token", $token)
$mac = $wc2.DownloadString("$imds/latest/meta-data/mac")
