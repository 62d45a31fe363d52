# trailwatch in us-east-1, where IAM change events arrive, with forwarders in the other
# regions this account uses. Build the zips first: `make build` at the repository root.
#
#   terraform init
#   terraform apply -var alert_email=secops@example.com
#
# Terraform cannot loop over providers, so each forwarded region is one provider and one module
# block. Add a pair for every enabled region (`aws account list-regions`), or deploy
# infra/region-forwarder.yaml as a CloudFormation StackSet instead.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.25"
    }
  }
}

variable "alert_email" {
  description = "Where alerts go; the address must confirm the subscription."
  type        = string
  default     = ""
}

locals {
  central_region = "us-east-1"
  tags           = { project = "trailwatch" }
}

provider "aws" {
  region = local.central_region
}

provider "aws" {
  alias  = "eu_west_1"
  region = "eu-west-1"
}

provider "aws" {
  alias  = "ap_southeast_2"
  region = "ap-southeast-2"
}

module "trailwatch" {
  source      = "../../modules/trailwatch"
  alert_email = var.alert_email
  tags        = local.tags
}

module "forwarder_eu_west_1" {
  source         = "../../modules/region-forwarder"
  providers      = { aws = aws.eu_west_1 }
  central_region = local.central_region
  tags           = local.tags
}

module "forwarder_ap_southeast_2" {
  source         = "../../modules/region-forwarder"
  providers      = { aws = aws.ap_southeast_2 }
  central_region = local.central_region
  tags           = local.tags
}

output "alerts_topic_arn" {
  value = module.trailwatch.alerts_topic_arn
}

output "dead_letter_queue_urls" {
  value = module.trailwatch.dead_letter_queue_urls
}
