"""Bitcoin Script for digit-bounty: the script builder (`script`), the MNIST classifier fragment
(`classifier`), the bounty covenant in its open and vetted modes (`bounty`: the chain shape), prize pools
(`pool`: independent prize outputs, no covenant), the attestor's co-signature (`attestor`), exact maximum fees
(`fees`), their transactions (`transactions`, `pushtx`), the bridge to bsv-sdk's interpreter (`interpreter`)
and this layer's errors (`errors`). Import from the modules."""
