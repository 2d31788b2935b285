# Packer >= 1.7: `packer init deploy/packer/` installs the Amazon plugin.
# (Kept apart from ethergate.pkr.hcl so Debian's Packer 1.6 can validate that
# file; 1.6 has the builder built in and does not know this block.)
packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0"
    }
  }
}
