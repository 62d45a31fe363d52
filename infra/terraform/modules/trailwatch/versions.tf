terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.25 added logging_config on aws_lambda_function.
      version = ">= 5.25"
    }
  }
}
