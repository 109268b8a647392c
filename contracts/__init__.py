"""Bitcoin Script for digit-bounty: the script builder (`script`), the MNIST classifier fragment
(`classifier`), the bounty covenant (`bounty`), its transactions (`transactions`, `pushtx`), the bridge to
bsv-sdk's interpreter (`interpreter`) and this layer's errors (`errors`). Import from the modules."""
