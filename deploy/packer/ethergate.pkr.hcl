# ethergate AMI bake: Amazon Linux 2023 and Debian 12, x86_64 and arm64.
#
#   cargo build --release --target x86_64-unknown-linux-gnu    (and aarch64-…)
#   packer init deploy/packer/            # plugins.pkr.hcl: the amazon plugin
#   packer build -var dist_dir=$PWD/dist deploy/packer/
#
# dist_dir holds x86_64/ and aarch64/, each with the release binary
# `ethergate` and its package `ethergate_*.deb` (cargo xtask deb). Debian
# images install the package, Amazon Linux images the binary, both through
# deploy/provision.sh, with the service enabled; the real config comes from
# cloud-init user-data at first boot (deploy/cloud-init/user-data.yaml).
# Packer 1.6 (Debian's) validates this file alone; it predates the plugins
# block, which therefore lives in plugins.pkr.hcl.

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "dist_dir" {
  type        = string
  description = "Directory with x86_64/ and aarch64/, each holding ethergate and ethergate_*.deb (release builds)."
  default     = "dist"
}

variable "deploy_dir" {
  type        = string
  description = "The repository's deploy/ directory."
  default     = "deploy"
}

variable "docs_dir" {
  type    = string
  default = "docs"
}

variable "version" {
  type    = string
  default = "0.1.0"
}

locals {
  # AMI names must be unique: a timestamp without characters AMI names reject.
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
  tags = {
    Application = "ethergate"
    Version     = var.version
  }
  # The dist_dir subdirectory (Rust's name for the architecture) each
  # source's binary comes from.
  dist_arch = {
    al2023_x86_64   = "x86_64"
    debian12_x86_64 = "x86_64"
    al2023_arm64    = "aarch64"
    debian12_arm64  = "aarch64"
  }
}

source "amazon-ebs" "al2023_x86_64" {
  region        = var.region
  instance_type = "t3.small"
  ssh_username  = "ec2-user"
  ami_name      = "ethergate-${var.version}-al2023-x86_64-${local.stamp}"
  tags          = local.tags
  source_ami_filter {
    owners      = ["amazon"]
    most_recent = true
    filters = {
      name                = "al2023-ami-2023.*-kernel-6.1-x86_64"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }
}

source "amazon-ebs" "al2023_arm64" {
  region        = var.region
  instance_type = "t4g.small"
  ssh_username  = "ec2-user"
  ami_name      = "ethergate-${var.version}-al2023-arm64-${local.stamp}"
  tags          = local.tags
  source_ami_filter {
    owners      = ["amazon"]
    most_recent = true
    filters = {
      name                = "al2023-ami-2023.*-kernel-6.1-arm64"
      architecture        = "arm64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }
}

source "amazon-ebs" "debian12_x86_64" {
  region        = var.region
  instance_type = "t3.small"
  ssh_username  = "admin"
  ami_name      = "ethergate-${var.version}-debian12-x86_64-${local.stamp}"
  tags          = local.tags
  source_ami_filter {
    # Debian's own account (https://wiki.debian.org/Cloud/AmazonEC2Image).
    owners      = ["136693071363"]
    most_recent = true
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }
}

source "amazon-ebs" "debian12_arm64" {
  region        = var.region
  instance_type = "t4g.small"
  ssh_username  = "admin"
  ami_name      = "ethergate-${var.version}-debian12-arm64-${local.stamp}"
  tags          = local.tags
  source_ami_filter {
    owners      = ["136693071363"]
    most_recent = true
    filters = {
      name                = "debian-12-arm64-*"
      architecture        = "arm64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }
}

# One build for the four images; each takes the binary of its architecture.
build {
  sources = [
    "source.amazon-ebs.al2023_x86_64",
    "source.amazon-ebs.debian12_x86_64",
    "source.amazon-ebs.al2023_arm64",
    "source.amazon-ebs.debian12_arm64",
  ]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/ethergate"]
  }
  # The binary and its .deb (cargo xtask deb): Debian installs the package,
  # Amazon Linux the binary.
  provisioner "file" {
    source      = "${var.dist_dir}/${local.dist_arch[source.name]}/"
    destination = "/tmp/ethergate/"
  }
  provisioner "file" {
    source      = "${var.deploy_dir}/setup-system.sh"
    destination = "/tmp/ethergate/setup-system.sh"
  }
  provisioner "file" {
    source      = "${var.deploy_dir}/systemd/ethergate.service"
    destination = "/tmp/ethergate/ethergate.service"
  }
  provisioner "file" {
    source      = "${var.deploy_dir}/ethergate.toml"
    destination = "/tmp/ethergate/ethergate.toml"
  }
  provisioner "file" {
    source      = "${var.docs_dir}/operator.md"
    destination = "/tmp/ethergate/operator.md"
  }
  provisioner "shell" {
    script          = "${var.deploy_dir}/provision.sh"
    execute_command = "chmod +x {{ .Path }}; sudo sh {{ .Path }} /tmp/ethergate"
  }
}
